"""An executor for one more model on the benchmark's stack, for as long as a benchmark needs it.

The private stack's executor serves inferhook/digits only; the async-task benchmarks start
a dedicated executor for their model on the stack's own topics (so requests go the whole
way: ingest → Kafka → executor → dispatcher → Postgres) and stop it afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from bench.context import Context
from cli.infra.process import terminate

LOAD_TIMEOUT = 180.0
"""Seconds the first request may take (the executor's start and the model's load)."""
RETRY_SECONDS = 1.0
"""Pause between warm-up requests that did not come back served."""


@asynccontextmanager
async def executor_for(ctx: Context, model: str,
                       warm_up: Callable[[], Awaitable[Any]]) -> AsyncIterator[None]:
    """A dedicated executor serving `model`, ready once `warm_up()` (a request that raises
    until it is served) has succeeded; terminated on exit."""
    slug = model.rsplit("/", 1)[-1]
    service = ctx.stack.spawn_service("executor", model, log_name=f"executor-{slug}")
    try:
        deadline = time.monotonic() + LOAD_TIMEOUT
        while True:
            service.alive()
            try:
                await warm_up()
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(RETRY_SECONDS)
        yield
    finally:
        await asyncio.to_thread(terminate, service.pid, timeout=15)
