"""audio/speech and audio/transcriptions: OpenAI's audio bodies and results.

Speech models take `{text, speed?}` → `{audio: WAV data URI, sample_rate, duration}`; the
dispatcher stores the WAV as a file, and the result gives its signed link as `url` (OpenAI
answers with the bytes; an async job answers JSON).
Transcription models take `{audio: WAV data URI, prompt?}` → `{text, language, duration,
segments: [{id, start, end, text, …}]}`; `response_format` picks json, text or verbose_json.
"""

from __future__ import annotations

import math
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
from ingest.adapters.media import check_wav, data_uri, refuse
from ingest.forms import FileField
from schemas.tasks import TaskKind

LANGUAGES = {"en": "english"}
"""ISO 639-1 codes of the languages the served transcription models know, with the names
verbose_json uses."""


class SpeechBody(TaskBody):
    """Body of `POST /v1/async/audio/speech`."""

    model_config = examples({"model": "inferhook/piper-joe", "input": "Hello."})

    input: str = Field(min_length=1, max_length=4096, description="The text to speak")
    voice: str | None = Field(default=None, max_length=64,
                              description="Accepted and ignored: each speech model has one voice")
    response_format: Literal["wav"] = Field(default="wav", description="wav (16-bit PCM)")
    speed: float | None = Field(default=None, ge=0.25, le=4.0, description="1 = the voice's pace")


class SpeechResult(BaseModel):
    """The speech as a WAV file, stored as a file of the caller's."""

    content_type: str = Field(description="audio/wav")
    url: str = Field(description="Signed link to the WAV, usable without an API key until the "
                                 "job expires")
    file_id: str | None = Field(default=None, description="The file (GET /v1/files/{file_id})")
    bytes: int | None = None
    sample_rate: int
    duration: float = Field(description="Seconds")


def speech(body: SpeechBody, entry: CatalogEntry) -> ModelRequest:
    model_input: dict[str, Any] = {"text": body.input}
    if body.speed is not None:
        model_input["speed"] = body.speed
    return ModelRequest(model_input)


def speech_result(done: Finished) -> Any:
    audio = binary(done.output["audio"], "audio/")
    sound = {"sample_rate": done.output["sample_rate"], "duration": done.output["duration"]}
    if isinstance(audio, str):  # not stored as a file: the data URI itself
        found = SpeechResult(content_type=audio[5:].split(";", 1)[0], url=audio, **sound)
    else:
        found = SpeechResult(content_type=audio.content_type, url=audio.url,
                             file_id=audio.file_id, bytes=audio.bytes, **sound)
    return found.model_dump(mode="json", exclude_none=True)


class TranscriptionBody(TaskBody):
    """Body (multipart) of `POST /v1/async/audio/transcriptions`."""

    file: FileField = Field(description="PCM WAV file (8, 16 or 32-bit; any rate)")
    language: str | None = Field(default=None, max_length=8, description="en (or nothing)")
    prompt: str | None = Field(default=None, max_length=1000,
                               description="Text that precedes the audio (names, spellings)")
    response_format: Literal["json", "text", "verbose_json"] = "json"


class TranscriptionUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: int


class Transcription(BaseModel):
    """response_format json; text gives the text alone (a JSON string)."""

    text: str
    usage: TranscriptionUsage


class VerboseTranscription(BaseModel):
    """response_format verbose_json: the segments with their times in seconds."""

    task: Literal["transcribe"] = "transcribe"
    language: str
    duration: float
    text: str
    segments: list[dict[str, Any]]
    usage: TranscriptionUsage


def transcription(body: TranscriptionBody, entry: CatalogEntry) -> ModelRequest:
    if body.language is not None and body.language.lower() not in LANGUAGES:
        raise refuse(("language",), f"the served transcription models know {', '.join(LANGUAGES)}; "
                                    f"not {body.language!r}")
    check_wav(body.file.data, ("file",))
    model_input = {"audio": data_uri("audio/wav", body.file.data)}
    if body.prompt:
        model_input["prompt"] = body.prompt
    return ModelRequest(model_input, {"response_format": body.response_format})


def transcription_result(done: Finished) -> Any:
    output = done.output
    text = str(output["text"]).strip()
    duration = float(output["duration"])
    usage = TranscriptionUsage(seconds=math.ceil(duration))
    fmt = done.options.get("response_format", "json")
    if fmt == "text":
        return text
    if fmt == "json":
        return Transcription(text=text, usage=usage).model_dump(mode="json")
    segments = output["segments"]
    if not isinstance(segments, list) or not all(isinstance(s, dict) for s in segments):
        raise OutputMismatch("segments must be a list of objects")
    language = str(output.get("language", ""))
    return VerboseTranscription(language=LANGUAGES.get(language, language), duration=duration,
                                text=text, segments=segments, usage=usage).model_dump(mode="json")


SPEECH = Adapter(TaskKind.SPEECH, SpeechBody, speech, speech_result, SpeechResult,
                 fields={"text": ("input",)})
TRANSCRIPTIONS = Adapter(TaskKind.TRANSCRIPTIONS, TranscriptionBody, transcription,
                         transcription_result, fields={"audio": ("file",)})
