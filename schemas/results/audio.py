"""Results of audio/speech and audio/transcriptions.

Speech models answer `{audio: WAV, sample_rate, duration}`; the dispatcher stores the WAV as
a file, and the result gives its signed link as `url` (OpenAI answers with the bytes; an
async job answers JSON). Transcription models answer `{text, language, duration,
segments: [{id, start, end, text, …}]}`; the request's `response_format` picks json, text
or verbose_json.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.results.base import Finished, OutputMismatch, binary

LANGUAGES = {"en": "english"}
"""ISO 639-1 codes of the languages the served transcription models know, with the names
verbose_json uses."""


class SpeechResult(BaseModel):
    """The speech as a WAV file, stored as a file of the caller's."""

    content_type: str = Field(description="audio/wav")
    url: str = Field(description="Signed link to the WAV, usable without an API key until the "
                                 "job expires")
    file_id: str | None = Field(default=None, description="The file (GET /v1/files/{file_id})")
    bytes: int | None = None
    sample_rate: int
    duration: float = Field(description="Seconds")


def speech_result(done: Finished) -> Any:
    """A SpeechResult as JSON data."""
    audio = binary(done.output["audio"], "audio/")
    sound = {"sample_rate": done.output["sample_rate"], "duration": done.output["duration"]}
    if isinstance(audio, str):  # not stored as a file: the data URI itself
        found = SpeechResult(content_type=audio[5:].split(";", 1)[0], url=audio, **sound)
    else:
        found = SpeechResult(content_type=audio.content_type, url=audio.url,
                             file_id=audio.file_id, bytes=audio.bytes, **sound)
    return found.model_dump(mode="json", exclude_none=True)


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


def transcription_result(done: Finished) -> Any:
    """The transcription in the request's response_format, as JSON data."""
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
