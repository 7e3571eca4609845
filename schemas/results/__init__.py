"""The result of each async task kind: a succeeded prediction's output → the OpenAI-style
response body of its kind (`GET /v1/async/<kind>/{id}`'s `result`).

Pure functions of the prediction, in schemas so that both sides may call them: ingest's
poll route (with the content of the output's files when a format needs it) and the
dispatcher's webhook bodies, which carry `result` beside `output` (binary results as file
links there). The request half of each kind (body → model input) is ingest's
(ingest.adapters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from schemas.results import audio, chat, embeddings, images, ocr, rerank
from schemas.results.base import Finished, OutputMismatch
from schemas.tasks import TaskKind

SHAPE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)
"""What a result function raises for an output that does not fit its kind (OutputMismatch
is a ValueError)."""


def _never(options: Mapping[str, Any]) -> bool:
    return False


@dataclass(frozen=True)
class ResultRule:
    """How one kind's result is made."""

    make: Callable[[Finished], Any]
    """The result as JSON data; raises one of SHAPE_ERRORS for an output that does not fit."""
    model: type[BaseModel] | None = None
    """What `make` returns, for the OpenAPI document; None when it varies (text formats)."""
    needs_files: Callable[[Mapping[str, Any]], bool] = _never
    """Whether, with these options, `make` needs the content of the output's files."""


RESULTS: dict[TaskKind, ResultRule] = {
    TaskKind.COMPLETIONS: ResultRule(chat.completion_result, chat.Completion),
    TaskKind.CHAT_COMPLETIONS: ResultRule(chat.chat_result, chat.ChatCompletion),
    TaskKind.RESPONSES: ResultRule(chat.responses_result, chat.Response),
    TaskKind.EMBEDDINGS: ResultRule(embeddings.result, embeddings.EmbeddingList),
    TaskKind.SPEECH: ResultRule(audio.speech_result, audio.SpeechResult),
    TaskKind.TRANSCRIPTIONS: ResultRule(audio.transcription_result),
    TaskKind.IMAGE_GENERATIONS: ResultRule(images.result, images.ImagesResult, images.needs_files),
    TaskKind.IMAGE_EDITS: ResultRule(images.result, images.ImagesResult, images.needs_files),
    TaskKind.IMAGE_VARIATIONS: ResultRule(images.result, images.ImagesResult, images.needs_files),
    TaskKind.OCR: ResultRule(ocr.result, ocr.OcrResult),
    TaskKind.RERANK: ResultRule(rerank.result, rerank.RerankList),
}
"""Every kind's result (a test checks that each TaskKind has one)."""


def linked_result(kind: str, *, id: str, model: str, created_at: datetime,
                  input: dict[str, Any] | None, output: Any,
                  options: dict[str, Any] | None) -> Any:
    """The result of a succeeded prediction of `kind` with binary results as file links (no
    file content is read): what a prediction object carries beside its output. None when
    `kind` is unknown or the output does not fit it (the poll reports that mismatch)."""
    try:
        rule = RESULTS[TaskKind(kind)]
    except ValueError:
        return None
    done = Finished(id=id, model=model, created_at=created_at, input=input or {}, output=output,
                    options=options or {}, links_only=True)
    try:
        return rule.make(done)
    except SHAPE_ERRORS:
        return None


__all__ = ["RESULTS", "SHAPE_ERRORS", "Finished", "OutputMismatch", "ResultRule",
           "linked_result"]
