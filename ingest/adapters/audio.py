"""audio/speech and audio/transcriptions: OpenAI's audio bodies (results: schemas.results.audio).

Speech models take `{text, speed?}` → `{audio: WAV data URI, sample_rate, duration}`; the
dispatcher stores the WAV as a file, and the result gives its signed link as `url` (OpenAI
answers with the bytes; an async job answers JSON).
Transcription models take `{audio: WAV data URI, prompt?}` → `{text, language, duration,
segments: [{id, start, end, text, …}]}`; `response_format` picks json, text or verbose_json.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from inferhook.catalog import CatalogEntry
from ingest.adapters.base import Adapter, ModelRequest, TaskBody, examples
from ingest.adapters.media import check_wav, data_uri, refuse
from ingest.forms import FileField
from schemas.results.audio import LANGUAGES
from schemas.tasks import TaskKind


class SpeechBody(TaskBody):
    """Body of `POST /v1/async/audio/speech`."""

    model_config = examples({"model": "inferhook/piper-joe", "input": "Hello."})

    input: str = Field(min_length=1, max_length=4096, description="The text to speak")
    voice: str | None = Field(default=None, max_length=64,
                              description="Accepted and ignored: each speech model has one voice")
    response_format: Literal["wav"] = Field(default="wav", description="wav (16-bit PCM)")
    speed: float | None = Field(default=None, ge=0.25, le=4.0, description="1 = the voice's pace")


def speech(body: SpeechBody, entry: CatalogEntry) -> ModelRequest:
    model_input: dict[str, Any] = {"text": body.input}
    if body.speed is not None:
        model_input["speed"] = body.speed
    return ModelRequest(model_input)


class TranscriptionBody(TaskBody):
    """Body (multipart) of `POST /v1/async/audio/transcriptions`."""

    file: FileField = Field(description="PCM WAV file (8, 16 or 32-bit; any rate)")
    language: str | None = Field(default=None, max_length=8, description="en (or nothing)")
    prompt: str | None = Field(default=None, max_length=1000,
                               description="Text that precedes the audio (names, spellings)")
    response_format: Literal["json", "text", "verbose_json"] = "json"


def transcription(body: TranscriptionBody, entry: CatalogEntry) -> ModelRequest:
    if body.language is not None and body.language.lower() not in LANGUAGES:
        raise refuse(("language",), f"the served transcription models know {', '.join(LANGUAGES)}; "
                                    f"not {body.language!r}")
    check_wav(body.file.data, ("file",))
    model_input = {"audio": data_uri("audio/wav", body.file.data)}
    if body.prompt:
        model_input["prompt"] = body.prompt
    return ModelRequest(model_input, {"response_format": body.response_format})


SPEECH = Adapter(TaskKind.SPEECH, SpeechBody, speech, fields={"text": ("input",)})
TRANSCRIPTIONS = Adapter(TaskKind.TRANSCRIPTIONS, TranscriptionBody, transcription,
                         fields={"audio": ("file",)})
