"""images/generations, images/edits, images/variations: OpenAI's image bodies → `{created, data}`.

Generators take `{n, seed?}` → `{images: [PNG data URIs], seed}` (unconditional: the
served DCGAN makes 64x64 faces and has no use for a prompt). Editors would take
`{image, prompt, n, mask?}` and variation models `{image, n}`, both with the generators'
output; no offline model does either yet, so those kinds answer 404 until one's manifest
lists them. The result (schemas.results.images): `url` is the stored file's signed link,
`b64_json` its content (read from the files store when the job is polled).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from inferhook.catalog import CatalogEntry
from ingest.adapters.base import (
    Adapter,
    ModelRequest,
    TaskBody,
    examples,
)
from ingest.adapters.media import check_image, data_uri, refuse
from ingest.forms import FileField, Upload
from schemas.tasks import TaskKind

SIZES = (None, "auto", "64x64")
"""Sizes the served generators make (DCGAN faces: 64x64 only)."""
ResponseFormat = Literal["b64_json", "url"]


class ImageOptions(TaskBody):
    n: int = Field(default=1, ge=1, le=10, description="How many images")
    size: str | None = Field(default=None, max_length=20, description="auto or 64x64")
    response_format: ResponseFormat = Field(
        default="url", description="url: a signed link to the PNG (no API key needed until the "
                                   "job expires); b64_json: the PNG in base64")
    user: str | None = Field(default=None, max_length=256, description="Accepted and ignored")


class ImageGenerationBody(ImageOptions):
    """Body of `POST /v1/async/images/generations`."""

    model_config = examples({"model": "inferhook/dcgan-faces", "n": 1, "seed": 7})

    prompt: str | None = Field(default=None, max_length=32000,
                               description="Unconditional models (DCGAN faces) ignore it")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1,
                             description="inferhook extension: the same seed, the same images")


class ImageEditBody(ImageOptions):
    """Body (multipart) of `POST /v1/async/images/edits`."""

    image: FileField
    prompt: str = Field(min_length=1, max_length=32000)
    mask: FileField | None = None


class ImageVariationBody(ImageOptions):
    """Body (multipart) of `POST /v1/async/images/variations`."""

    image: FileField


def _options(body: ImageOptions) -> dict[str, Any]:
    if body.size not in SIZES:
        raise refuse(("size",), f"the served image models make 64x64 images; size {body.size!r} "
                                "cannot be made (send 64x64, auto or nothing)")
    return {"response_format": body.response_format}


def _image(upload: Upload, name: str) -> str:
    return data_uri(check_image(upload.data, (name,)), upload.data)


def generation(body: ImageGenerationBody, entry: CatalogEntry) -> ModelRequest:
    options = _options(body)
    model_input: dict[str, Any] = {"n": body.n}
    if body.seed is not None:
        model_input["seed"] = body.seed
    return ModelRequest(model_input, options)


def edit(body: ImageEditBody, entry: CatalogEntry) -> ModelRequest:
    options = _options(body)
    model_input = {"image": _image(body.image, "image"), "prompt": body.prompt, "n": body.n}
    if body.mask is not None:
        model_input["mask"] = _image(body.mask, "mask")
    return ModelRequest(model_input, options)


def variation(body: ImageVariationBody, entry: CatalogEntry) -> ModelRequest:
    return ModelRequest({"image": _image(body.image, "image"), "n": body.n}, _options(body))


GENERATIONS = Adapter(TaskKind.IMAGE_GENERATIONS, ImageGenerationBody, generation)
EDITS = Adapter(TaskKind.IMAGE_EDITS, ImageEditBody, edit)
VARIATIONS = Adapter(TaskKind.IMAGE_VARIATIONS, ImageVariationBody, variation)
