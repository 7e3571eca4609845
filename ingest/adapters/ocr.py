"""ocr: `{model, document: {type: "image_url", image_url}}` (or `{type: "file", file_id}`, an
upload) → `{pages: [{index, markdown}]}` (Mistral's OCR shape).

Models take `{image: <image data URI>}` → `{text, lines: [{text, confidence, box}]}`, the
lines in reading order. An image is one page; each line becomes a markdown paragraph.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from inferhook.catalog import CatalogEntry
from ingest.adapters.base import Adapter, ModelRequest, TaskBody
from ingest.adapters.media import check_image_uri
from schemas.tasks import TaskKind


class ImageURL(BaseModel):
    url: str


class ImageDocument(BaseModel):
    """An image, as a base64 data URI (URLs are not fetched)."""

    type: Literal["image_url"]
    image_url: str | ImageURL = Field(description="data:image/…;base64,… (or {url: …})")


class FileDocument(BaseModel):
    """An uploaded image (POST /v1/files), by id."""

    type: Literal["file"]
    file_id: str = Field(min_length=1, max_length=100)


class OcrBody(TaskBody):
    """Body of `POST /v1/async/ocr`."""

    document: ImageDocument | FileDocument = Field(discriminator="type")


def request(body: OcrBody, entry: CatalogEntry) -> ModelRequest:
    document = body.document
    if isinstance(document, FileDocument):  # ingest inlines the file; the model reads it
        return ModelRequest({"image": {"file_id": document.file_id}})
    uri = document.image_url if isinstance(document.image_url, str) else document.image_url.url
    check_image_uri(uri, ("document", "image_url"))
    return ModelRequest({"image": uri})


ADAPTER = Adapter(TaskKind.OCR, OcrBody, request, fields={"image": ("document",)})
