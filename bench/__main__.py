"""`python -m bench`: start a private stack (or use a running one), run the benchmarks,
write bench/results/latest.json, latest.md and the PNG plots.

    python -m bench                      # everything (about 20 minutes on 2 cores)
    python -m bench --only create,get    # some; their figures replace those in latest.*
    python -m bench --only durable,cpu,hops,capacity,profiles   # issue 11's measurements
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from rich.console import Console
from rich.progress import Progress

from bench import plots, profile
from bench.benchmarks import BENCHMARKS
from bench.context import Context, Options
from bench.machine import facts
from bench.results import Result, write_json, write_markdown
from bench.stack import STATE, BenchStack, external, start_private
from inferhook.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each wrk run")
    parser.add_argument("--soak-seconds", type=float, default=120.0,
                        help="length of the 200/s memory run (issue 6 asks for 600)")
    parser.add_argument("--fill-rows", type=int, default=1_000_000,
                        help="predictions in Postgres for the large side of `scale`")
    parser.add_argument("--no-fsync", action="store_true",
                        help="private PostgreSQL with fsync off (default: durable)")
    parser.add_argument("--profile", choices=["ingest", "executor", "dispatcher"],
                        help="record a py-spy profile of this service during the run")
    parser.add_argument("--url", help="use a running stack at this URL instead of a private one")
    parser.add_argument("--key", help="with --url: an API key")
    parser.add_argument("--owner", default="dev", help="with --url: the key's owner")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def chosen(only: str) -> list[str]:
    names = [n.strip() for n in only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmarks: {', '.join(unknown)}; choose from "
                         f"{', '.join(BENCHMARKS)}")
    return names


RETIRED = frozenset({"e2e overhead p50 @ 200/s", "e2e overhead p99 @ 200/s",
                     "executor served digits", "executor served minilm",
                     "projection throughput", "webhook deliveries"})
"""Row names that issue 11's goals table renamed: an older latest.json's rows under them
are dropped, not kept beside the new ones."""


def merge(out: Path, results: list[Result], notes: dict[str, str]
          ) -> tuple[list[Result], dict[str, str]]:
    """With --only: keep the figures of benchmarks not run this time from latest.json."""
    previous = out / "latest.json"
    if not previous.exists():
        return results, notes
    old = json.loads(previous.read_text())
    fresh = {r.name for r in results} | RETIRED
    kept = [Result(**r) for r in old.get("results", []) if r["name"] not in fresh]
    return kept + results, {**old.get("notes", {}), **notes}


def open_stack(args: argparse.Namespace, console: Console) -> BenchStack:
    if args.url:
        if not args.key:
            raise SystemExit("--url needs --key")
        settings = Settings()
        return external(args.url, args.key, settings.kafka.bootstrap,
                        settings.database.url.get_secret_value(), settings.kafka.topic_prefix,
                        owner=args.owner)
    with console.status("starting Kafka, PostgreSQL, ingest, executor, dispatcher"):
        return start_private(durable_postgres=not args.no_fsync)


async def run_all(args: argparse.Namespace, stack: BenchStack, console: Console
                  ) -> tuple[list[Result], dict[str, str], Context, str]:
    names = chosen(args.only)
    options = Options(seconds=args.seconds, soak_seconds=args.soak_seconds,
                      fill_rows=args.fill_rows)
    db = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=4)
    http = aiohttp.ClientSession()
    ctx = Context(stack=stack, options=options, db=db, http=http, console=console)
    results: list[Result] = []
    try:
        version = str(await db.fetchval("SHOW server_version"))
        await ctx.warm_up()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("benchmarks", total=len(names))
            for name in names:
                progress.update(task, description=name)
                clock = time.monotonic()
                try:
                    results += await BENCHMARKS[name](ctx)
                except Exception as exc:  # one broken benchmark must not sink the others
                    console.print_exception(max_frames=8)
                    ctx.note(name, f"failed: {type(exc).__name__}: {exc}"[:400])
                console.log(f"[green]{name}[/] done in {time.monotonic() - clock:.0f}s")
                progress.advance(task)
    finally:
        await http.close()
        await db.close()
    return results, ctx.notes, ctx, version


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    chosen(args.only)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 5,000 waiters need the fds
    console = Console()
    started = time.monotonic()
    load_at_start = os.getloadavg()[0]
    stack = open_stack(args, console)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    spy = None
    raw = STATE / f"profile-{args.profile}.raw"
    try:
        if args.profile and args.profile in stack.services:
            spy = profile.start(stack.services[args.profile].pid, raw)
        results, notes, ctx, version = asyncio.run(run_all(args, stack, console))
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        stack.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    if spy is not None and raw.exists():
        (args.out / f"profile-{args.profile}.txt").write_text(profile.summarize(raw))
    for plot in ctx.plots:
        plots.draw(plot, args.out)
    for name, text in ctx.files.items():
        (args.out / name).write_text(text)
    if args.only:
        results, notes = merge(args.out, results, notes)
    machine = facts(version, stack.durable_postgres)
    run: dict[str, Any] = {
        "command": "make bench" + (f" ONLY={args.only}" if args.only else ""),
        "benchmarks": chosen(args.only),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "options": {"seconds": args.seconds, "soak_seconds": args.soak_seconds,
                    "fill_rows": args.fill_rows},
        "sharing": "services, Kafka, PostgreSQL and load generators share the machine's cores",
        "postgres_instrumentation": list(stack.instrumented),
        "load_average_1m": {"start": round(load_at_start, 2),
                            "end": round(os.getloadavg()[0], 2)},
    }
    write_json(args.out / "latest.json", machine, results, notes, run)
    write_markdown(args.out / "latest.md", machine, results, notes, run)
    console.print((args.out / "latest.md").read_text())


if __name__ == "__main__":
    main()
