"""CPU per event of the projector's transaction at small batches, the case of a lightly
loaded stack (at 50/s a batch holds one event), on a Postgres of its own:

- `driver`: `project_batch` in `inferhook.db.driver_transaction` (asyncpg underneath), as
  the dispatcher runs it;
- `sqlalchemy`: the same batches in `engine.begin()`, through SQLAlchemy's execution layer
  (how the dispatcher ran them before): the baseline, measured in the same run.

Each prediction is created → started → succeeded with a webhook (so each batch also writes
the outbox); batches of 1, 3 and 30 events. `statements` counts the round trips per batch
(BEGIN and COMMIT included) in a separate, unmeasured round through `driver`. CPU is this
process's (`time.process_time`) and the Postgres server's (its process tree, from /proc),
per event; the two modes alternate by round and the median round counts, so a busy machine
hurts both alike.

    python -m bench.projector_cost [--predictions 300] [--rounds 3] [--filter start,completed]
                                   [--out FILE]

`--filter` sets the webhooks' `webhook_events_filter` (default: none listed, so only the
terminal webhook; `start` adds one at create time with the queue place, and one at start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.cpu import tree_seconds
from bench.events import lifecycle
from cli.infra.postgres import LocalPostgres
from dispatcher.projector import project_batch
from inferhook.db import create_engine, driver_connection, driver_transaction, migrate
from inferhook.filelinks import FileLinks
from inferhook.settings import DatabaseSettings
from schemas.events import Created, PredictionEvent
from store.files import PostgresFiles
from store.records import Connection

BATCHES = (1, 3, 30)
OUTPUT = {"digit": 7, "probabilities": [0.0] * 7 + [1.0] + [0.0] * 2}
Transaction = Callable[[AsyncEngine], AbstractAsyncContextManager[Connection]]


def _sqlalchemy(engine: AsyncEngine) -> AbstractAsyncContextManager[Connection]:
    return engine.begin()


MODES: dict[str, Transaction] = {"driver": driver_transaction, "sqlalchemy": _sqlalchemy}


def events(predictions: int, wanted: list[str]) -> list[PredictionEvent]:
    """Created → started → succeeded of each prediction, each with a webhook taking `wanted`."""
    made = list(lifecycle("bench", "inferhook/digits", {"image": [[0.0] * 8] * 8}, OUTPUT,
                          predictions))
    for event in made:
        if isinstance(event.data, Created):
            event.data.webhook = "http://127.0.0.1:9/hook"
            event.data.webhook_events_filter = list(wanted)
    return made


async def batches(items: list[PredictionEvent], size: int) -> AsyncIterator[list[PredictionEvent]]:
    """`items` in arrival order, `size` at a time (a prediction's events stay in order)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def one_round(engine: AsyncEngine, server_pid: int, transaction: Transaction,
                    predictions: int, size: int, wanted: list[str]) -> dict[str, float]:
    """Project fresh events in batches of `size`; CPU ms per event of both sides."""
    items = events(predictions, wanted)
    files, links = PostgresFiles(), FileLinks("http://127.0.0.1", b"bench")
    offset = 0
    server, mine, clock = tree_seconds(server_pid), time.process_time(), time.monotonic()
    async for batch in batches(items, size):
        offset += len(batch)
        async with transaction(engine) as conn:
            await project_batch(conn, batch, {("bench.events", 0): offset}, files=files,
                                links=links, progress_interval=1.0)
    wall = time.monotonic() - clock
    return {"python_ms": (time.process_time() - mine) / len(items) * 1e3,
            "postgres_ms": (tree_seconds(server_pid) - server) / len(items) * 1e3,
            "events_per_s": len(items) / wall}


async def statements_per_batch(engine: AsyncEngine, predictions: int, size: int,
                               wanted: list[str]) -> float:
    """Statements sent per batch (BEGIN and COMMIT included), read by asyncpg's query logger."""
    sent: list[str] = []

    def log(query: asyncpg.connection.LoggedQuery) -> None:
        sent.append(query.query)

    @asynccontextmanager
    async def logged(engine: AsyncEngine) -> AsyncIterator[Connection]:
        async with driver_connection(engine) as raw:
            raw.add_query_logger(log)
            try:
                async with raw.transaction():
                    yield raw
            finally:
                raw.remove_query_logger(log)

    items = events(predictions, wanted)
    files, links = PostgresFiles(), FileLinks("http://127.0.0.1", b"bench")
    count = 0
    async for batch in batches(items, size):
        count += 1
        async with logged(engine) as conn:
            await project_batch(conn, batch, {("bench.events", 1): count}, files=files,
                                links=links, progress_interval=1.0)
    await asyncio.sleep(0)  # the logger is called soon after each query: let the last one in
    return len(sent) / count


async def measure(predictions: int, rounds: int, wanted: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="projector-cost-") as folder:
        server = LocalPostgres(Path(folder))
        server.start()
        try:
            settings = DatabaseSettings(url=server.url)
            await asyncio.to_thread(migrate, settings)
            engine = create_engine(settings)
            assert server.pid is not None
            results: dict[str, Any] = {}
            for size in BATCHES:
                runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
                await one_round(engine, server.pid, driver_transaction, 20, size, wanted)  # warm
                for _ in range(rounds):
                    for mode, transaction in MODES.items():
                        runs[mode].append(await one_round(engine, server.pid, transaction,
                                                          predictions, size, wanted))
                results[f"batch {size}"] = {
                    mode: {key: statistics.median(r[key] for r in found) for key in found[0]}
                    for mode, found in runs.items()}
                results[f"batch {size}"]["driver"]["statements"] = await statements_per_batch(
                    engine, 30, size, wanted)
            await engine.dispose()
            return results
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--filter", default="", help="webhook_events_filter, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("bench/results/projector_cost.json"))
    args = parser.parse_args()
    wanted = [name for name in args.filter.split(",") if name]
    results = asyncio.run(measure(args.predictions, args.rounds, wanted))
    report = {"load_average": os.getloadavg(), "filter": wanted, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for size, modes in results.items():
        driver, baseline = modes["driver"], modes["sqlalchemy"]
        total = driver["python_ms"] + driver["postgres_ms"]
        before = baseline["python_ms"] + baseline["postgres_ms"]
        print(f"{size}: driver {driver['python_ms']:.3f} + {driver['postgres_ms']:.3f} ms/event "
              f"({driver['statements']:.2f} statements a batch), "
              f"sqlalchemy {baseline['python_ms']:.3f} + {baseline['postgres_ms']:.3f} "
              f"(ratio {total / before:.2f})")


if __name__ == "__main__":
    main()
