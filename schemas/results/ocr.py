"""Result of ocr: `{pages: [{index, markdown}]}` (Mistral's OCR shape).

Models answer `{text, lines: [{text, confidence, box}]}`, the lines in reading order. An
image is one page; each line becomes a markdown paragraph.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas.results.base import Finished


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


def markdown(lines: list[dict[str, Any]]) -> str:
    """One paragraph per recognised line, in the order given."""
    return "\n\n".join(str(line["text"]).strip() for line in lines if str(line["text"]).strip())


def result(done: Finished) -> Any:
    """An OcrResult as JSON data."""
    page = OcrPage(index=0, markdown=markdown(done.output["lines"]))
    return OcrResult(model=done.model, pages=[page],
                     usage_info=OcrUsage(pages_processed=1)).model_dump(mode="json")
