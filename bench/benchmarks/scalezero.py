"""scalezero: a model at zero executors, then one request: how long until it starts.

A supervisor (cli.autoscale) runs in this process on the stack's topics, over a models
folder holding inferhook/spin scaled to zero (the stack's own executor serves digits
only). One prediction is created through ingest; the figures are the time from the create
to GET first showing it past `pending` (`started`, phase `loading`), to its executor's
first `started` event (an executor has it) and to its outcome, both read from the events
topic. Measured with the supervisor starting a new executor process and handing the model
to its warm spare (`inferhook executor --standby`, imports done), each with the
supervisor's `loading` (cli.loading) and without it (before: `pending` until an executor
took the request).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer

from bench.context import Context
from bench.results import Result
from bench.stack import STATE
from cli.autoscale import Autoscaler
from inferhook.settings import KafkaSettings, Settings
from schemas.events import EventType, PredictionEvent
from schemas.topics import Topics

SPIN = "inferhook/spin"
SPARE_READY = 8.0
"""Seconds the supervisor runs before the request, so its spare has done its imports."""


def spin_at_zero(ctx: Context) -> Path:
    root = STATE / "models-scalezero"
    shutil.rmtree(root, ignore_errors=True)
    target = root / "spin"
    shutil.copytree(ctx.catalog()[SPIN].folder, target)
    manifest = yaml.safe_load((target / "manifest.yaml").read_text())
    manifest.update(min_replicas=0, max_replicas=1, idle_seconds=600)
    (target / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


async def from_zero(ctx: Context, models: Path, *, spare: bool, tell: bool) -> dict[str, float]:
    """Seconds from a request's create to GET showing it `started` (`loading`), to its
    executor's first `started` event, and to its outcome."""
    kafka = KafkaSettings(bootstrap=ctx.stack.kafka_bootstrap, topic_prefix=ctx.stack.topic_prefix)
    topics = Topics(kafka.topic_prefix)
    settings = Settings(models_dir=models, kafka=kafka)
    env = ctx.stack.env(INFERHOOK_MODELS_DIR=str(models))
    autoscaler = Autoscaler(settings, env=env, interval=0.25, spare=spare, tell_loading=tell)
    stop = asyncio.Event()
    task = asyncio.create_task(autoscaler.run(stop))
    events = AIOKafkaConsumer(topics.events, bootstrap_servers=kafka.bootstrap, group_id=None,
                              auto_offset_reset="earliest", enable_auto_commit=False)
    await events.start()
    seen: dict[str, float] = {}
    try:
        await asyncio.sleep(SPARE_READY)
        origin = time.time()
        status, body, _ = await ctx.create({"model": SPIN, "input": {"milliseconds": 10}})
        if status != 201:
            raise RuntimeError(f"create answered {status}: {body}")
        watching = asyncio.create_task(_until_not_pending(ctx, body["id"], origin, seen))
        deadline = time.monotonic() + 120
        while "completed" not in seen and time.monotonic() < deadline:
            for records in (await events.getmany(timeout_ms=200)).values():
                for record in records:
                    event = PredictionEvent.decode(list(record.headers), record.value)
                    if event.subject != body["id"]:
                        continue
                    executor = event.source.startswith("inferhook/executor/")
                    key = "started" if event.type is EventType.STARTED and executor else (
                        "completed" if event.type.status and event.type.status.is_terminal() else "")
                    if key and key not in seen:
                        seen[key] = event.time.timestamp() - origin
        watching.cancel()
        return seen
    finally:
        await events.stop()
        stop.set()
        await asyncio.wait_for(task, timeout=120)


async def _until_not_pending(ctx: Context, prediction_id: str, origin: float,
                             seen: dict[str, float]) -> None:
    """Poll GET every 20 ms; note when it first shows the prediction past `pending`."""
    while True:
        status, body, _ = await ctx.get(prediction_id)
        if status == 200 and body["status"] != "pending":
            seen["loading"] = time.time() - origin
            return
        await asyncio.sleep(0.02)


async def run(ctx: Context) -> list[Result]:
    """Request → loading (GET), → started (executor) and → completed for spin at zero: a
    new process against the warm spare, each with and without the supervisor's `loading`."""
    models = spin_at_zero(ctx)
    # Alternated, so neither variant always comes right after the other: a new member's
    # join waits for the group's other members (the stack's digits executor) to rejoin, up
    # to a heartbeat interval, and that wait varies from run to run.
    fresh = await from_zero(ctx, models, spare=False, tell=True)
    fresh_before = await from_zero(ctx, models, spare=False, tell=False)
    spare_before = await from_zero(ctx, models, spare=True, tell=False)
    spare = await from_zero(ctx, models, spare=True, tell=True)
    ctx.note("scalezero", "spin at zero, one request of 10 ms, creation → GET shows loading / "
                          "→ the executor's started / → completed: "
                          f"new process {_ms(fresh_before)} before, {_ms(fresh)} with the "
                          f"supervisor's loading; warm spare {_ms(spare_before)} before, "
                          f"{_ms(spare)} with it.")
    before = "pending until an executor has it"
    return [
        Result.measure("scale from zero spin: request → loading seen by GET", "ms",
                       _get(spare, "loading"), baseline=(before, _get(spare_before, "loading"))),
        Result.measure("scale from zero spin, new process: request → loading seen by GET", "ms",
                       _get(fresh, "loading"), baseline=(before, _get(fresh_before, "loading"))),
        Result.measure("scale from zero spin: request → started", "ms",
                       _get(spare, "started"), baseline=("new process", _get(fresh, "started"))),
        Result.measure("scale from zero spin: request → completed", "ms",
                       _get(spare, "completed"), baseline=("new process", _get(fresh, "completed"))),
    ]


def _get(seen: dict[str, Any], key: str) -> float | None:
    return seen[key] * 1000 if key in seen else None


def _ms(seen: dict[str, float]) -> str:
    return " / ".join(f"{seen[k] * 1000:.0f} ms" if k in seen else "never"
                      for k in ("loading", "started", "completed"))
