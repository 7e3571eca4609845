"""One adapter per task kind of `/v1/async/<kind>`: the OpenAI-style body → the model's
input (see ingest.adapters.base); the model's output → the OpenAI-style result is the
kind's in schemas.results."""

from __future__ import annotations

from typing import Any

from ingest.adapters import audio, chat, embeddings, images, ocr, rerank
from ingest.adapters.base import Adapter
from schemas.tasks import TaskKind

ADAPTERS: dict[TaskKind, Adapter[Any]] = {adapter.kind: adapter for adapter in (
    chat.COMPLETIONS, chat.CHAT, chat.RESPONSES, embeddings.ADAPTER, audio.SPEECH,
    audio.TRANSCRIPTIONS, images.GENERATIONS, images.EDITS, images.VARIATIONS, ocr.ADAPTER,
    rerank.ADAPTER)}
"""Every kind's adapter (a test checks that each TaskKind has one)."""
