"""images/generations, images/edits, images/variations: OpenAI's image bodies → `{created, data}`.

Generators take `{n, seed?}` → `{images: [PNG data URIs], seed}` (unconditional: the
served DCGAN makes 64x64 faces and has no use for a prompt). Editors would take
`{image, prompt, n, mask?}` and variation models `{image, n}`, both with the generators'
output; no offline model does either yet, so those kinds answer 404 until one's manifest
lists them. The dispatcher stores output images as files: `url` is the file's signed link,
`b64_json` its content (read from the files store when the job is polled).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from inferhook.catalog import CatalogEntry
from ingest.adapters.base import (
    Adapter,
    Finished,
    ModelRequest,
    OutputMismatch,
    TaskBody,
    binary,
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


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None


class ImagesResult(BaseModel):
    """OpenAI's images response, with the seed that made them (an inferhook extension)."""

    created: int
    data: list[ImageData]
    seed: int | None = None


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


def _data(value: Any, fmt: str, files: Mapping[str, bytes]) -> ImageData:
    image = binary(value, "image/")
    if isinstance(image, str):  # not stored as a file: the data URI itself
        return ImageData(url=image) if fmt == "url" else ImageData(b64_json=image.split(",", 1)[1])
    if fmt == "url":
        return ImageData(url=image.url)
    if image.file_id not in files:
        raise OutputMismatch(f"the content of {image.file_id} is gone")
    return ImageData(b64_json=base64.b64encode(files[image.file_id]).decode())


def result(done: Finished) -> Any:
    fmt = str(done.options.get("response_format", "url"))
    data = [_data(value, fmt, done.files) for value in done.output["images"]]
    return ImagesResult(created=done.created, data=data,
                        seed=done.output.get("seed")).model_dump(mode="json", exclude_none=True)


def _b64(options: Mapping[str, Any]) -> bool:
    return options.get("response_format") == "b64_json"


GENERATIONS = Adapter(TaskKind.IMAGE_GENERATIONS, ImageGenerationBody, generation, result,
                      ImagesResult, needs_files=_b64)
EDITS = Adapter(TaskKind.IMAGE_EDITS, ImageEditBody, edit, result, ImagesResult, needs_files=_b64)
VARIATIONS = Adapter(TaskKind.IMAGE_VARIATIONS, ImageVariationBody, variation, result,
                     ImagesResult, needs_files=_b64)
