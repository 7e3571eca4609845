"""The models an executor holds: loaded at start (dedicated) or on demand (pooled).

Pooled mode loads a model on its first request and keeps it warm in an LRU cache; while
the cache is above the memory budget (estimated from the ONNX files' sizes), the least
recently used model that has no work queued or running is evicted. Loading happens in
the thread pool, once per model even when many requests wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from executors.batching import Batcher
from executors.errors import ModelLoadError
from executors.runtime import LoadedModel
from inferhook import metrics
from inferhook.catalog import CatalogEntry

log = logging.getLogger(__name__)


def intra_op_threads(configured: int, models: int) -> int:
    """Threads per session: as configured, or the cores shared among the models served."""
    if configured > 0:
        return configured
    return max(1, (os.cpu_count() or 2) // max(1, models))


class ModelPool:
    """Loaded models by name, each with its batcher."""

    def __init__(self, catalog: dict[str, CatalogEntry], pool: ThreadPoolExecutor, *,
                 memory_budget_bytes: int, threads: int) -> None:
        self.catalog = catalog
        self.pool = pool
        self.memory_budget_bytes = memory_budget_bytes
        self.threads = threads
        self._warm: OrderedDict[str, Batcher] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Batcher]] = {}

    def add(self, model: LoadedModel) -> Batcher:
        """Serve an already loaded model (dedicated mode)."""
        batcher = Batcher(model, self.pool)
        batcher.start()
        self._warm[model.name] = batcher
        return batcher

    def warm(self, name: str) -> Batcher | None:
        """The model's batcher when it is loaded (marks it recently used)."""
        batcher = self._warm.get(name)
        if batcher is not None:
            self._warm.move_to_end(name)
        return batcher

    @property
    def names(self) -> list[str]:
        """Models loaded now, least recently used first."""
        return list(self._warm)

    async def load(self, name: str) -> Batcher:
        """Load a model not yet warm (one load per model however many callers wait)."""
        if (batcher := self.warm(name)) is not None:
            return batcher
        if name in self._loading:
            return await asyncio.shield(self._loading[name])
        entry = self.catalog.get(name)
        if entry is None:
            raise ModelLoadError(f"model {name} is not in this executor's catalog")
        future: asyncio.Future[Batcher] = asyncio.get_running_loop().create_future()
        self._loading[name] = future
        metrics.COLD_STARTS.labels(name).inc()
        clock = time.perf_counter()
        try:
            model = await asyncio.get_running_loop().run_in_executor(
                self.pool, lambda: LoadedModel.load(entry, intra_op_threads=self.threads))
            metrics.LOAD_SECONDS.labels(name).observe(time.perf_counter() - clock)
            batcher = self.add(model)
            future.set_result(batcher)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: callers that wait get it from their own await
            raise
        finally:
            del self._loading[name]
        await self._evict(keep=name)
        return batcher

    async def _evict(self, *, keep: str) -> None:
        total = sum(b.model.size_bytes for b in self._warm.values())
        for name in list(self._warm):
            if total <= self.memory_budget_bytes:
                return
            batcher = self._warm[name]
            if name == keep or batcher.busy:
                continue
            del self._warm[name]
            total -= batcher.model.size_bytes
            await batcher.stop()
            log.info("evicted %s from the warm cache (%d MB over budget)", name,
                     max(0, total - self.memory_budget_bytes) // 2**20)

    async def close(self) -> None:
        """Stop every batcher."""
        for batcher in self._warm.values():
            await batcher.stop()
        self._warm.clear()
