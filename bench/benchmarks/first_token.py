"""first_token: first-token latency of chat (inferhook/smollm2) through the whole stack,
p50 and p99, against the first token on ONNX Runtime directly.

Served: `POST /v1/async/chat/completions` (greedy, a few tokens), then
`GET /v1/predictions/{id}/stream`, timed from the submit to the first `output` event:
ingest, Kafka, a dedicated executor (its prefill and first token), the event back through
Kafka, the dispatcher's projection, the notice and the stream's read. Raw:
bench.tools.raw_first_token on the same messages: the prefill and the argmax of its
logits, which is all the handler does before it publishes its first partial output (the
second token's time, one decode step more, goes to the notes). RUNS requests one after
another, after a warm-up; both sides in the same run.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import orjson

from bench.context import Context
from bench.results import Result
from bench.serving import executor_for
from bench.stats import percentile_ms

CHAT = "inferhook/smollm2"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
RUNS = 30
MAX_TOKENS = 4
"""Tokens per request: enough to publish partial output, few enough to keep runs short."""
TERMINAL_EVENTS = (b"succeeded", b"failed", b"canceled")


async def first_output(ctx: Context) -> float:
    """Seconds from submitting a chat job to its first `output` event over SSE."""
    base = ctx.stack.base_url
    body = {"model": CHAT, "messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0}
    started = time.perf_counter()
    async with ctx.http.post(f"{base}/v1/async/chat/completions", json=body,
                             headers=ctx.auth) as response:
        job: dict[str, Any] = await response.json()
    if response.status != 202:
        raise RuntimeError(f"chat submit answered {response.status}: {str(job)[:300]}")
    async with ctx.http.get(f"{base}/v1/predictions/{job['id']}/stream",
                            headers=ctx.auth) as stream:
        async for line in stream.content:
            if line.startswith(b"event: "):
                name = line[len(b"event: "):].strip()
                if name == b"output":
                    return time.perf_counter() - started
                if name in TERMINAL_EVENTS:
                    raise RuntimeError(f"chat job {job['id']} ended ({name.decode()}) "
                                       "without an output event")
    raise RuntimeError(f"the stream of {job['id']} closed without an output event")


async def run(ctx: Context) -> list[Result]:
    """Raw first (nothing else running), then served."""
    if CHAT not in ctx.catalog():
        raise RuntimeError(f"{CHAT} is not in the catalog; run `inferhook models build`")
    messages = ctx.tmp / "first-token-messages.json"
    messages.write_bytes(orjson.dumps(MESSAGES))
    raw = await ctx.tool("raw_first_token", "--model", CHAT, "--messages", str(messages),
                         "--runs", str(RUNS), timeout=600)
    served: list[float] = []
    async with executor_for(ctx, CHAT, lambda: first_output(ctx)):
        for _ in range(RUNS):
            served.append(await first_output(ctx))
    await ctx.settle()
    ctx.note("first_token", f"{CHAT}, a {raw['prompt_tokens']}-token prompt, {RUNS} requests "
                            f"one at a time on {raw['provider']}; served = submit → first "
                            "`output` event over SSE (the whole stack); raw = prefill + argmax "
                            "on onnxruntime (p50 of the second token, one decode step more: "
                            f"{statistics.median(raw['second_token']) * 1000:.1f} ms).")
    return rows(served, raw["first_token"])


def rows(served: list[float], raw: list[float]) -> list[Result]:
    """The p50 and p99 rows from the samples of each side (seconds)."""
    return [Result.measure(f"chat first-token latency p{q} through the stack vs raw onnxruntime",
                           "ms", percentile_ms(served, q),
                           baseline=(f"raw onnxruntime first token p{q}", percentile_ms(raw, q)))
            for q in (50, 99)]
