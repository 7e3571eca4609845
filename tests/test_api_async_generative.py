"""/v1/async for the kinds of the generative models, through the real stack: chat,
completions and responses on inferhook/smollm2; speech on inferhook/piper-joe transcribed
back by inferhook/whisper-tiny-en; their 4xx. Each test runs where its models are in the
catalog, and is skipped where they are not yet (a model present without its manifest's
`kinds:` fails them)."""

from __future__ import annotations

import io
import re
import wave
from typing import Any

import aiohttp

from tests.support import Stack
from tests.test_api_async import fetch, finished, prediction_count, run, submit

LLM, TTS, STT = "inferhook/smollm2", "inferhook/piper-joe", "inferhook/whisper-tiny-en"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


async def transcribe(stack: Stack, audio: bytes, **fields: str) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("model", STT)
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", audio, filename="speech.wav", content_type="audio/wav")
    async with stack.http.post(f"{stack.base_url}/v1/async/audio/transcriptions", data=form,
                               headers=stack.auth()) as response:
        return response.status, await response.json(content_type=None)


QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


async def test_chat_completion_mentions_paris(stack: Stack) -> None:
    done = await run(stack, "chat/completions", {"model": LLM, "messages": QUESTION,
                                                 "temperature": 0, "max_tokens": 40})
    result = done["result"]
    assert result["object"] == "chat.completion" and result["id"] == f"chatcmpl-{done['id']}"
    (choice,) = result["choices"]
    assert "paris" in words(choice["message"]["content"])
    assert choice["finish_reason"] in ("stop", "length")
    usage = result["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_completions_and_responses(stack: Stack) -> None:
    done = await run(stack, "completions", {"model": LLM, "prompt": "The capital of France is",
                                            "max_tokens": 6, "temperature": 0})
    assert "paris" in words(done["result"]["choices"][0]["text"])
    cut = await run(stack, "responses", {"model": LLM, "input": "Tell me a long story.",
                                         "max_output_tokens": 3, "temperature": 0})
    assert (cut["result"]["status"], cut["result"]["usage"]["output_tokens"]) == ("incomplete", 3)


async def test_chat_bad_requests_create_nothing(stack: Stack) -> None:
    for body in ({"model": LLM, "messages": QUESTION, "stream": True},
                 {"model": LLM, "messages": QUESTION, "max_tokens": 100000},  # model's maximum
                 {"model": LLM, "messages": []},
                 {"model": "inferhook/all-minilm-l6-v2", "messages": QUESTION}):
        status, problem = await submit(stack, "chat/completions", body)
        assert status in (400, 422), problem
    assert await prediction_count(stack) == 0


async def test_speech_transcribed_back_is_the_sentence(stack: Stack) -> None:
    sentence = "The quick brown fox jumps over the lazy dog."
    spoken = await run(stack, "audio/speech", {"model": TTS, "input": sentence, "voice": "alloy"})
    assert spoken["result"]["content_type"] == "audio/wav"
    audio = await fetch(stack, spoken["result"]["url"])  # a signed link: no key needed
    assert len(audio) == spoken["result"]["bytes"]
    with wave.open(io.BytesIO(audio)) as wav:
        assert wav.getframerate() == spoken["result"]["sample_rate"]

    status, job = await transcribe(stack, audio, response_format="verbose_json")
    assert status == 202, job
    done = await finished(stack, "audio/transcriptions", job["id"])
    result = done["result"]
    assert words(result["text"]) == words(sentence)
    assert result["language"] == "english" and result["segments"]
    status, job = await transcribe(stack, audio, response_format="text")
    assert (await finished(stack, "audio/transcriptions", job["id"]))["result"] == result["text"]


async def test_transcription_bad_requests_create_nothing(stack: Stack) -> None:
    status, problem = await transcribe(stack, b"ID3\x04 this is no wav")
    assert status == 422 and problem["errors"][0]["loc"] == ["body", "file"]
    status, _ = await transcribe(stack, b"RIFF" + b"\0" * stack.settings.max_body_bytes)
    assert status == 413
    status, _ = await transcribe(stack, b"RIFF", response_format="srt")
    assert status == 422
    assert await prediction_count(stack) == 0
