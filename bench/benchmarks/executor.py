"""executor: served throughput through Kafka against raw ONNX Runtime on the same model and
batch size (goals, issue 11: ≥ 0.5x for digits, ≥ 0.85x for minilm), and dynamic batching
against batch size 1 for inferhook/minilm with 64 requests in flight (goal ≥ 3x).

Served: N `created` events are written to a fresh request topic first, then an executor
process is started on it; throughput is N over the executor's own clock, from its first
`started` to its last terminal event (so process start and model load don't count).
Raw: bench.tools.raw_ort runs the model's preprocess → session.run → postprocess on the
same input in batches of the manifest's max_batch (what the executor aims to run), in a
process of its own.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import yaml

from bench.context import DIGITS, Context
from bench.events import created, produce
from bench.results import Goal, GoalKind, Result
from bench.stack import STATE
from cli.infra.process import terminate
from inferhook.kafka import ensure_topics
from inferhook.settings import KafkaSettings
from schemas.topics import Topics

MINILM = "inferhook/minilm"
SERVED_N = {DIGITS: 3000, MINILM: 1024}
SERVED_VS_RAW = "executor served vs raw onnxruntime, same batch"
"""The rows' name in issue 11's goals table (goals: digits ≥ 0.5x, minilm ≥ 0.85x)."""
EXECUTOR_CONCURRENCY = 64
"""Requests the executor takes from Kafka at once (its max_poll_records)."""


async def served(ctx: Context, model: str, n: int, models_dir: Path | None = None) -> float:
    """Predictions per second an executor process serves from a pre-filled request topic."""
    topics = Topics(f"{ctx.stack.topic_prefix}x{uuid.uuid4().hex[:6]}")
    kafka = KafkaSettings(bootstrap=ctx.stack.kafka_bootstrap, topic_prefix=topics.prefix)
    payload = ctx.example(model)
    await ensure_topics(kafka, [topics.events])  # so the reader finds it from the start
    await produce(kafka, topics.requests(model),
                  (created(ctx.stack.owner, model, payload) for _ in range(n)))
    env = {"INFERHOOK_KAFKA_TOPIC_PREFIX": topics.prefix}
    if models_dir is not None:
        env["INFERHOOK_MODELS_DIR"] = str(models_dir)
    service = ctx.stack.spawn_service("executor", model, log_name=f"executor-{topics.prefix}",
                                      **env)
    try:
        drained = await ctx.tool("drain", "--bootstrap", ctx.stack.kafka_bootstrap, "--topic",
                                 topics.events, "--expect", str(n), "--terminal",
                                 "--timeout", "180", timeout=240)
    finally:
        await asyncio.to_thread(terminate, service.pid, timeout=10)
    if drained["count"] < n:
        ctx.note("executor", f"{model}: only {drained['count']} of {n} served predictions "
                             "finished in time.")
    span = (drained["last_completed"] or 0) - (drained["first_started"] or 0)
    return float(drained["count"] / span) if span > 0 else 0.0


async def raw(ctx: Context, model: str, n: int, batch: int) -> dict[str, float]:
    """The raw ONNX Runtime figures for `model` at `batch`."""
    return await ctx.tool("raw_ort", "--model", model, "--n", str(n), "--batch", str(batch),
                          timeout=300)


def batch_one_copy(ctx: Context, model: str) -> Path:
    """A models folder holding only `model`, with its manifest changed to max_batch 1."""
    entry = ctx.catalog()[model]
    root = STATE / "models-batch1"
    shutil.rmtree(root, ignore_errors=True)
    target = root / entry.folder.name
    shutil.copytree(entry.folder, target)
    manifest = yaml.safe_load((target / "manifest.yaml").read_text())
    manifest.setdefault("batching", {})["max_batch"] = 1
    (target / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


async def run(ctx: Context) -> list[Result]:
    """Digits served vs raw; minilm batched vs batch 1 (when the model exists)."""
    catalog = ctx.catalog()
    max_batch = catalog[DIGITS].manifest.batching.max_batch
    n = SERVED_N[DIGITS]
    raw_batched = await raw(ctx, DIGITS, n, max_batch)
    raw_single = await raw(ctx, DIGITS, n, 1)
    ours = await served(ctx, DIGITS, n)
    results = [
        Result.measure(f"{SERVED_VS_RAW}: digits", "pred/s", ours,
                       baseline=(f"raw onnxruntime, batch {max_batch}", raw_batched["per_second"]),
                       goal=Goal(GoalKind.RATIO_MIN, 0.5)),
        Result.measure("executor served digits vs batch 1", "pred/s", ours,
                       baseline=("raw onnxruntime, batch 1", raw_single["per_second"])),
        Result.measure("cold start digits (session + first run)", "ms",
                       raw_single["cold_start"] * 1000),
    ]
    ctx.note("executor", f"served = executor process fed {n} requests from Kafka "
                         f"({EXECUTOR_CONCURRENCY} in flight); raw = one thread calling the "
                         f"model handler and session.run; provider {raw_single['provider']}.")
    if MINILM not in catalog:
        ctx.note("executor", "inferhook/minilm is not in the catalog yet: batching not measured.")
        results.append(Result.not_measured("minilm dynamic batching", "pred/s",
                                           baseline_name="batch 1",
                                           goal=Goal(GoalKind.RATIO_MIN, 3)))
        return results
    m = SERVED_N[MINILM]
    batched = await served(ctx, MINILM, m)
    single = await served(ctx, MINILM, m, batch_one_copy(ctx, MINILM))
    minilm_raw = await raw(ctx, MINILM, m, catalog[MINILM].manifest.batching.max_batch)
    results += [
        Result.measure("minilm dynamic batching", "pred/s", batched,
                       baseline=("served, max_batch 1", single), goal=Goal(GoalKind.RATIO_MIN, 3)),
        Result.measure(f"{SERVED_VS_RAW}: minilm", "pred/s", batched,
                       baseline=(f"raw onnxruntime, batch "
                                 f"{catalog[MINILM].manifest.batching.max_batch}",
                                 minilm_raw["per_second"]),
                       goal=Goal(GoalKind.RATIO_MIN, 0.85)),
        Result.measure("cold start minilm (session + first run)", "ms",
                       minilm_raw["cold_start"] * 1000),
    ]
    return results
