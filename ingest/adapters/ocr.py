"""ocr: `{model, document: {type: "image_url", image_url}}` → `{pages: [{index, markdown}]}`
(Mistral's OCR shape).

Models take `{image: <image data URI>}` → `{text, lines: [{text, confidence, box}]}`, the
lines in reading order. An image is one page; each line becomes a markdown paragraph.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from inferhook.catalog import CatalogEntry
from ingest.adapters.base import Adapter, Finished, ModelRequest, TaskBody
from ingest.adapters.media import check_image_uri
from schemas.tasks import TaskKind


class ImageURL(BaseModel):
    url: str


class ImageDocument(BaseModel):
    """An image, as a base64 data URI (URLs are not fetched)."""

    type: Literal["image_url"]
    image_url: str | ImageURL = Field(description="data:image/…;base64,… (or {url: …})")


class OcrBody(TaskBody):
    """Body of `POST /v1/async/ocr`."""

    document: ImageDocument


class OcrPage(BaseModel):
    index: int
    markdown: str


class OcrUsage(BaseModel):
    pages_processed: int


class OcrResult(BaseModel):
    """The document's pages as markdown, in reading order."""

    model: str
    pages: list[OcrPage]
    usage_info: OcrUsage


def request(body: OcrBody, entry: CatalogEntry) -> ModelRequest:
    image = body.document.image_url
    uri = image if isinstance(image, str) else image.url
    check_image_uri(uri, ("document", "image_url"))
    return ModelRequest({"image": uri})


def markdown(lines: list[dict[str, Any]]) -> str:
    """One paragraph per recognised line, in the order given."""
    return "\n\n".join(str(line["text"]).strip() for line in lines if str(line["text"]).strip())


def result(done: Finished) -> Any:
    page = OcrPage(index=0, markdown=markdown(done.output["lines"]))
    return OcrResult(model=done.model, pages=[page],
                     usage_info=OcrUsage(pages_processed=1)).model_dump(mode="json")


ADAPTER = Adapter(TaskKind.OCR, OcrBody, request, result, OcrResult,
                  fields={"image": ("document", "image_url")})
