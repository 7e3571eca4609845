"""scalezero: a model at zero executors, then one request: how long until it starts.

A supervisor (cli.autoscale) runs in this process on a topic prefix of its own, over a
models folder holding inferhook/spin scaled to zero. One `created` request is written to
spin's request topic; the figures are the time from its creation to its first `started`
event (phase `loading`: an executor has it) and to its outcome, read from the events
topic. Measured twice: the supervisor starting a new executor process, and handing the
model to its warm spare (`inferhook executor --standby`, imports done).
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer

from bench.context import Context
from bench.events import created, produce
from bench.results import Result
from bench.stack import STATE
from cli.autoscale import Autoscaler
from inferhook.kafka import ensure_topics
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


async def from_zero(ctx: Context, models: Path, *, spare: bool) -> dict[str, float]:
    """Seconds from a request's creation to its `started` and to its outcome."""
    prefix = f"{ctx.stack.topic_prefix}z{uuid.uuid4().hex[:6]}"
    kafka = KafkaSettings(bootstrap=ctx.stack.kafka_bootstrap, topic_prefix=prefix)
    topics = Topics(prefix)
    await ensure_topics(kafka, [topics.events, topics.requests(SPIN)])
    settings = Settings(models_dir=models, kafka=kafka)
    env = ctx.stack.env(INFERHOOK_KAFKA_TOPIC_PREFIX=prefix, INFERHOOK_MODELS_DIR=str(models))
    autoscaler = Autoscaler(settings, env=env, interval=0.25, spare=spare)
    stop = asyncio.Event()
    task = asyncio.create_task(autoscaler.run(stop))
    events = AIOKafkaConsumer(topics.events, bootstrap_servers=kafka.bootstrap, group_id=None,
                              auto_offset_reset="earliest", enable_auto_commit=False)
    await events.start()
    try:
        await asyncio.sleep(SPARE_READY)
        request = created(ctx.stack.owner, SPIN, {"milliseconds": 10})
        await produce(kafka, topics.requests(SPIN), [request])
        origin = request.time.timestamp()
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while "completed" not in seen and time.monotonic() < deadline:
            for records in (await events.getmany(timeout_ms=200)).values():
                for record in records:
                    event = PredictionEvent.decode(list(record.headers), record.value)
                    if event.subject != request.subject:
                        continue
                    key = "started" if event.type is EventType.STARTED else (
                        "completed" if event.type.status and event.type.status.is_terminal() else "")
                    if key and key not in seen:
                        seen[key] = event.time.timestamp() - origin
        return seen
    finally:
        await events.stop()
        stop.set()
        await asyncio.wait_for(task, timeout=120)


async def run(ctx: Context) -> list[Result]:
    """Request → started and → completed for spin at zero, new process against warm spare."""
    models = spin_at_zero(ctx)
    fresh = await from_zero(ctx, models, spare=False)
    spare = await from_zero(ctx, models, spare=True)
    ctx.note("scalezero", f"spin at zero, one request of 10 ms: new process {_ms(fresh)}; "
                          f"warm spare {_ms(spare)} (creation → started / → completed).")
    return [
        Result.measure("scale from zero spin: request → started", "ms",
                       _get(spare, "started"), baseline=("new process", _get(fresh, "started"))),
        Result.measure("scale from zero spin: request → completed", "ms",
                       _get(spare, "completed"), baseline=("new process", _get(fresh, "completed"))),
    ]


def _get(seen: dict[str, Any], key: str) -> float | None:
    return seen[key] * 1000 if key in seen else None


def _ms(seen: dict[str, float]) -> str:
    return " / ".join(f"{seen[k] * 1000:.0f} ms" if k in seen else "never"
                      for k in ("started", "completed"))
