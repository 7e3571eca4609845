"""speech: real-time factor (processing seconds per second of audio; lower is faster) of
transcription (inferhook/whisper-tiny-en) and of speech (inferhook/piper-joe), served
through the whole stack against the same handler on ONNX Runtime directly.

Served: `POST /v1/async/audio/transcriptions` (the whisper example's WAV, verbose_json) and
`POST /v1/async/audio/speech` (the piper example's text) with `Prefer: wait`, timed from
the request to the completed job: ingest, Kafka, a dedicated executor, the dispatcher's
projection (the speech WAV stored as a file) and the wait's notice. Raw:
bench.tools.raw_handler runs the model's handler on the same input in a process of its
own. Each side runs RUNS times after a warm-up; medians are kept, so the ratio
(served / raw) is the stack's cost on top of the model. The audio's duration is the
model's own (piper's output, whisper's input).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from bench.context import Context
from bench.results import Result
from bench.serving import executor_for
from inferhook import datauri

TRANSCRIBE = "inferhook/whisper-tiny-en"
SPEAK = "inferhook/piper-joe"
RUNS = 5
WAIT = "wait=60"
UNIT = "s per s of audio"


@dataclass(frozen=True)
class Served:
    """One served job: wall seconds, the audio's seconds, the prediction's predict_time."""

    seconds: float
    audio_seconds: float
    predict_time: float | None


async def _post(ctx: Context, kind: str, **request: Any) -> tuple[float, dict[str, Any]]:
    """Submit a job and wait for it; seconds until it answered completed, and the job."""
    url = f"{ctx.stack.base_url}/v1/async/{kind}"
    started = time.perf_counter()
    async with ctx.http.post(url, headers={**ctx.auth, "Prefer": WAIT}, **request) as response:
        job: dict[str, Any] = await response.json()
    seconds = time.perf_counter() - started
    if response.status != 200 or job.get("status") != "completed":
        raise RuntimeError(f"{kind}: job not completed within the wait: {response.status} "
                           f"{str(job)[:300]}")
    return seconds, job


async def _predict_time(ctx: Context, job_id: str) -> float | None:
    _, prediction, _ = await ctx.get(job_id)
    value = prediction.get("metrics", {}).get("predict_time")
    return float(value) if value is not None else None


async def speak(ctx: Context, text: str) -> Served:
    """One speech job through the stack."""
    seconds, job = await _post(ctx, "audio/speech", json={"model": SPEAK, "input": text})
    return Served(seconds, float(job["result"]["duration"]), await _predict_time(ctx, job["id"]))


async def transcribe(ctx: Context, wav: bytes) -> Served:
    """One transcription job through the stack."""
    form = aiohttp.FormData()
    form.add_field("model", TRANSCRIBE)
    form.add_field("response_format", "verbose_json")
    form.add_field("file", wav, filename="speech.wav", content_type="audio/wav")
    seconds, job = await _post(ctx, "audio/transcriptions", data=form)
    return Served(seconds, float(job["result"]["duration"]), await _predict_time(ctx, job["id"]))


async def raw(ctx: Context, model: str, model_input: dict[str, Any]) -> dict[str, Any]:
    """The handler on ONNX Runtime directly, RUNS times after a warm-up."""
    path = ctx.tmp / f"raw-input-{model.rsplit('/', 1)[-1]}.json"
    path.write_bytes(orjson.dumps(model_input))
    return await ctx.tool("raw_handler", "--model", model, "--input", str(path),
                          "--runs", str(RUNS), timeout=600)


def rtf(runs: list[Served]) -> float:
    """Median real-time factor of served runs."""
    return statistics.median(run.seconds / run.audio_seconds for run in runs)


async def measure(ctx: Context, model: str, what: str, model_input: dict[str, Any],
                  one: Callable[[], Awaitable[Served]]) -> Result:
    """Raw first (nothing else running), then served; one row."""
    measured = await raw(ctx, model, model_input)
    duration = float(measured["output"]["duration"])
    raw_rtf = statistics.median(measured["seconds"]) / duration
    runs: list[Served] = []
    async with executor_for(ctx, model, one):
        for _ in range(RUNS):
            runs.append(await one())
    served = rtf(runs)
    predict = [r.predict_time / r.audio_seconds for r in runs if r.predict_time is not None]
    ctx.note("speech", f"{what}: {duration:.2f} s of audio; raw {raw_rtf:.3f}, served "
                       f"{served:.3f} (predict_time alone {statistics.median(predict):.3f}) "
                       f"s per s of audio, medians of {RUNS} on {measured['provider']}."
             if predict else f"{what}: predict_time missing.")
    return row(what, model, served, raw_rtf)


def row(what: str, model: str, served: float, raw: float) -> Result:
    """One model's row: served real-time factor, raw as its baseline."""
    return Result.measure(f"real-time factor served vs raw: {what} ({model})", UNIT, served,
                          baseline=("raw onnxruntime, same handler", raw))


async def run(ctx: Context) -> list[Result]:
    """Transcription and speech, each raw then served."""
    catalog = ctx.catalog()
    missing = [m for m in (TRANSCRIBE, SPEAK) if m not in catalog]
    if missing:
        raise RuntimeError(f"not in the catalog: {', '.join(missing)}; run `inferhook models build`")
    example = ctx.example(TRANSCRIBE)
    _, wav = datauri.decode(str(example["audio"]))
    text = str(ctx.example(SPEAK)["text"])
    results = [
        await measure(ctx, TRANSCRIBE, "transcription", example, lambda: transcribe(ctx, wav)),
        await measure(ctx, SPEAK, "speech", {"text": text}, lambda: speak(ctx, text)),
    ]
    ctx.note("speech", "served = POST /v1/async/audio/… with Prefer: wait, timed to the "
                       "completed job (ingest, Kafka, a dedicated executor, projection, the "
                       "wait's notice); raw = the same handler on onnxruntime in one process; "
                       "ratio = served / raw (1 = no cost beyond the model).")
    return results
