"""Result of images/generations, images/edits and images/variations: `{created, data}`.

Image models answer `{images: [PNG], seed}`; the dispatcher stores output images as files:
`url` is the file's signed link, `b64_json` its content (which the poll reads from the files
store; where content is not at hand, `Finished.links_only`, the link is given instead).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from schemas.results.base import Finished, OutputMismatch, binary


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None


class ImagesResult(BaseModel):
    """OpenAI's images response, with the seed that made them (an inferhook extension)."""

    created: int
    data: list[ImageData]
    seed: int | None = None


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
    """An ImagesResult as JSON data."""
    fmt = "url" if done.links_only else str(done.options.get("response_format", "url"))
    data = [_data(value, fmt, done.files) for value in done.output["images"]]
    return ImagesResult(created=done.created, data=data,
                        seed=done.output.get("seed")).model_dump(mode="json", exclude_none=True)


def needs_files(options: Mapping[str, Any]) -> bool:
    """Whether, with these options, the result needs the content of the output's files."""
    return options.get("response_format") == "b64_json"
