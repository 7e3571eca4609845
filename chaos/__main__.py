"""`python -m chaos`: run the fault test (see chaos/__init__.py); exit 1 when a run lost or
contradicted anything, 2 when a run could not complete."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace
from typing import Any

from chaos.config import RunConfig, parse_faults
from chaos.report import headline
from chaos.run import run_once


def parse(argv: list[str] | None = None) -> tuple[RunConfig, int]:
    """The run's configuration and how many runs (seeds seed, seed+1, …)."""
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    p.add_argument("--scenario", choices=["single", "cluster"], default="single")
    p.add_argument("--duration", type=float, default=120.0, help="seconds of load (default 120)")
    p.add_argument("--rate", type=float, default=40.0, help="creates per second (default 40)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=1, help="consecutive runs, seeds seed, seed+1, …")
    p.add_argument("--faults", default="",
                   help="counts replacing the defaults, e.g. executor=1,broker=0 (default: executor=3, "
                        "dispatcher=3, ingest=2, broker=1 per broker, postgres=1)")
    p.add_argument("--drain", type=float, default=120.0, help="longest wait after the load (s)")
    p.add_argument("--outage", type=float, default=3.0,
                   help="seconds a killed broker or stopped PostgreSQL stays down")
    p.add_argument("--fail-one-in", type=int, default=10,
                   help="the receiver answers 500 to about 1 in N attempts (0: never)")
    p.add_argument("--results-dir", default="chaos/results")
    args = p.parse_args(argv)
    config = RunConfig(scenario=args.scenario, duration=args.duration, rate=args.rate, seed=args.seed,
                       faults=parse_faults(args.faults, args.scenario), drain=args.drain,
                       outage=args.outage, fail_one_in=args.fail_one_in, results_dir=args.results_dir)
    return config, args.runs


async def run_all(config: RunConfig, runs: int) -> list[dict[str, Any]]:
    """The runs one after another; SIGTERM cancels like Ctrl-C (everything is stopped)."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    reports = []
    for i in range(runs):
        report = await run_once(replace(config, seed=config.seed + i))
        print(f"run {i + 1}/{runs}: {headline(report)}\n  → {report.get('file')}", flush=True)
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config, runs = parse(argv)
    try:
        reports = asyncio.run(run_all(config, runs))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: every process was stopped; the report of the run cut short is written",
              file=sys.stderr)
        sys.exit(130)
    if any(r.get("error") for r in reports):
        sys.exit(2)
    if not all(r["ok"] for r in reports):
        sys.exit(1)


if __name__ == "__main__":
    main()
