"""Task kinds: the OpenAI-style requests `/v1/async/<kind>` takes, each run as one prediction.

A model's manifest lists the kinds it serves (`kinds:`); a prediction made through the
async API records its kind (and the options its result is shaped by) in its `created`
event and its row.
"""

from __future__ import annotations

from enum import StrEnum


class TaskKind(StrEnum):
    """The kinds of the async API, named as their path after `/v1/async/`."""

    COMPLETIONS = "completions"
    CHAT_COMPLETIONS = "chat/completions"
    RESPONSES = "responses"
    EMBEDDINGS = "embeddings"
    SPEECH = "audio/speech"
    TRANSCRIPTIONS = "audio/transcriptions"
    IMAGE_GENERATIONS = "images/generations"
    IMAGE_EDITS = "images/edits"
    IMAGE_VARIATIONS = "images/variations"
    OCR = "ocr"
    RERANK = "rerank"

    @property
    def multipart(self) -> bool:
        """True when the body is multipart/form-data (OpenAI's endpoint takes a file)."""
        return self in _MULTIPART

    @property
    def slug(self) -> str:
        """The kind as an identifier (`chat_completions`), for operation ids."""
        return self.value.replace("/", "_")


_MULTIPART = frozenset({TaskKind.TRANSCRIPTIONS, TaskKind.IMAGE_EDITS, TaskKind.IMAGE_VARIATIONS})
