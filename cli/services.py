"""`inferhook ingest`, `inferhook executor`, `inferhook dispatcher` and `inferhook supervise`:
one service in the foreground.

Each service package is imported only when its command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

from cli.command import Handler, Subparsers
from cli.supervise import Service, Supervisor, stop_on_signals
from inferhook.settings import Settings


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` with SIGINT/SIGTERM setting `stop` (so work in flight drains)."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


def ingest(settings: Settings, args: argparse.Namespace) -> None:
    from ingest.app import serve

    if args.workers > 1:
        ingest_workers(args.workers)
    else:
        serve(settings, reuse_port=args.reuse_port)


def ingest_workers(count: int) -> None:
    """`count` ingest processes on one port (SO_REUSEPORT: the kernel spreads connections
    over them, as gunicorn's workers), kept running by a Supervisor until SIGINT/SIGTERM.

    Ingest holds no state a worker must share (DESIGN.md: stateless), so any worker
    answers any request; each serves its own /metrics.
    """
    supervisor = Supervisor([
        Service(f"ingest-{n}", [sys.executable, "-m", "cli", "ingest", "--reuse-port"])
        for n in range(1, count + 1)])
    stopping = stop_on_signals()
    supervisor.start()
    try:
        supervisor.run(stopping)
    finally:
        supervisor.stop()


def executor(settings: Settings, args: argparse.Namespace) -> None:
    from executors.worker import Executor, load_models

    names = args.models or settings.executor_models
    if args.standby:
        # Imports are done (onnxruntime, numpy, the executor): wait for the models to serve,
        # one line on stdin (the supervisor's warm spare; cli.autoscale).
        names = sys.stdin.readline().split()
        if not names:
            return
    if settings.executor.mode == "pooled":
        worker = Executor.pooled(settings, names)
    else:
        worker = Executor.dedicated(settings, load_models(settings, names))
    run_until_signal(worker.run)


def supervise(settings: Settings, args: argparse.Namespace) -> None:
    from cli.autoscale import Autoscaler
    from inferhook import metrics

    async def main(stop: asyncio.Event) -> None:
        async with metrics.serving(settings.metrics):
            await Autoscaler(settings).run(stop)

    run_until_signal(main)


def dispatcher(settings: Settings, args: argparse.Namespace) -> None:
    from dispatcher.service import run

    run_until_signal(lambda stop: run(settings, stop))


def commands(sub: Subparsers) -> dict[str, Handler]:
    """Register `ingest`, `executor` and `dispatcher`; return their handlers by name."""
    p = sub.add_parser("ingest", help="run the HTTP API")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes serving the one port (SO_REUSEPORT); default 1")
    p.add_argument("--reuse-port", action="store_true",
                   help="share the port with other ingest processes (set for each worker)")
    p = sub.add_parser("executor", help="run an executor")
    p.add_argument("models", nargs="*", help="owner/name of models to serve (default: all)")
    p.add_argument("--standby", action="store_true",
                   help="import everything, then read the models to serve from a line on stdin")
    sub.add_parser("dispatcher", help="run the projector and webhook delivery")
    sub.add_parser("supervise", help="run executors per model, scaled from their backlog "
                   "(min_replicas, max_replicas, idle_seconds in each manifest)")
    return {"ingest": ingest, "executor": executor, "dispatcher": dispatcher,
            "supervise": supervise}
