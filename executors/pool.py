"""The models an executor holds: loaded at start (dedicated) or on demand (pooled).

Pooled mode loads a model on its first request and keeps it warm in an LRU cache; while
the cache is above the memory budget (estimated from the ONNX files' sizes), the least
recently used model that has no work queued or running is evicted. Loading happens in
the pool's ORT threads, once per model even when many requests wait for it; the batches
run in the same threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
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
    """Loaded models by name, each with its batcher, and the threads ORT runs in.

    `catalog` is what may be served; `preloaded` models (dedicated mode) are served from
    `start()` on, the others are loaded on their first request.
    """

    def __init__(self, catalog: dict[str, CatalogEntry], *, memory_budget_bytes: int,
                 intra_op_threads: int, preloaded: Iterable[LoadedModel] = ()) -> None:
        self.catalog = catalog
        self.memory_budget_bytes = memory_budget_bytes
        self.intra_op_threads = intra_op_threads
        """ORT threads per session of a model loaded here."""
        self.ort_threads = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2),
                                              thread_name_prefix="ort")
        """Where loads and runs happen (ORT releases the GIL), never on the event loop."""
        self._preloaded = list(preloaded)
        self._warm: OrderedDict[str, Batcher] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Batcher]] = {}

    def start(self) -> None:
        """Start serving the preloaded models (in the running event loop)."""
        for model in self._preloaded:
            self._serve(model)

    def _serve(self, model: LoadedModel) -> Batcher:
        batcher = Batcher(model, self.ort_threads)
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
                self.ort_threads, lambda: LoadedModel.load(entry, intra_op_threads=self.intra_op_threads))
            metrics.LOAD_SECONDS.labels(name).observe(time.perf_counter() - clock)
            batcher = self._serve(model)
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
        """Stop every batcher and the ORT threads (a run in progress is terminated)."""
        for batcher in self._warm.values():
            await batcher.stop()
        self._warm.clear()
        self.ort_threads.shutdown(wait=False, cancel_futures=True)
