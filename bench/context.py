"""What every benchmark module gets: the stack, a database pool, helpers and collectors."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil
from rich.console import Console

from bench.stack import STATE, BenchStack
from cli.infra.process import free_port, port_open, terminate, wait_until
from inferhook.catalog import CatalogEntry, load_catalog
from inferhook.settings import REPO_ROOT, Settings

DIGITS = "inferhook/digits"
TERMINAL = ("succeeded", "failed", "canceled")


@dataclass
class Options:
    """Knobs of one run (all have defaults that fit the 15-minute budget)."""

    seconds: float = 8.0
    """Length of each closed-loop (wrk) measurement."""
    soak_seconds: float = 120.0
    """Length of the 200/s run that memory is measured around (issue 6 asks for 600)."""
    fill_rows: int = 1_000_000
    """Predictions in Postgres for the large side of the scale benchmark."""
    connections: int = 64
    """wrk connections for create and get."""


@dataclass
class Series:
    """One line of a plot."""

    label: str
    x: list[float]
    y: list[float]


@dataclass
class Plot:
    """A PNG to draw: its file stem, title, axis labels and lines."""

    name: str
    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    log_y: bool = False
    log_x: bool = False


@dataclass
class Context:
    """Shared state of a benchmark run."""

    stack: BenchStack
    options: Options
    db: asyncpg.Pool
    http: aiohttp.ClientSession
    console: Console
    plots: list[Plot] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    """Text files to write next to latest.json (profiles, the hop table), by file name."""

    @property
    def tmp(self) -> Path:
        path = STATE / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.key}"}

    def catalog(self) -> dict[str, CatalogEntry]:
        """The models as the services see them (read fresh: other work adds models)."""
        return load_catalog(Settings().models_dir)

    def example(self, model: str = DIGITS) -> dict[str, Any]:
        """A model's example input, as its manifest or its folder holds it."""
        example = self.catalog()[model].manifest.example_input
        if example is None:
            raise RuntimeError(f"{model} has no example input; run `inferhook models build`")
        return example

    def body_file(self, model: str = DIGITS) -> Path:
        """A file holding a create body (no webhook) for `model`."""
        path = self.tmp / f"body-{model.replace('/', '-')}.json"
        path.write_bytes(orjson.dumps({"model": model, "input": self.example(model)}))
        return path

    def note(self, name: str, text: str) -> None:
        """Add a line to the notes of the run (shown under the table)."""
        if text in self.notes.get(name, ""):
            return
        self.notes[name] = f"{self.notes[name]} {text}" if name in self.notes else text
        self.console.log(f"[yellow]{name}[/]: {text}")

    async def create(self, body: dict[str, Any], headers: dict[str, str] | None = None
                     ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """POST one prediction; return status, JSON body and headers."""
        async with self.http.post(f"{self.stack.base_url}/v1/predictions", json=body,
                                  headers={**self.auth, **(headers or {})}) as response:
            return response.status, await response.json(), dict(response.headers)

    async def get(self, prediction_id: str, headers: dict[str, str] | None = None
                  ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """GET one prediction; return status, JSON body and headers."""
        async with self.http.get(f"{self.stack.base_url}/v1/predictions/{prediction_id}",
                                 headers={**self.auth, **(headers or {})}) as response:
            return response.status, await response.json(), dict(response.headers)

    async def warm_up(self, *, stuck_after: float = 6.0) -> None:
        """A few predictions through the whole path, so no benchmark pays for first use
        (after a restart of the services: proof that they work again)."""
        for _ in range(5):
            await asyncio.gather(*(self.create({"model": DIGITS, "input": self.example()})
                                   for _ in range(10)))
        await self.settle(stuck_after=stuck_after)

    async def settle(self, timeout: float = 120.0, stuck_after: float = 6.0) -> bool:
        """Wait until the stack has no unfinished work: every prediction of ours terminal and
        no webhook due. Benchmarks call it so one's backlog doesn't slow the next.

        Returns False (and notes it) if work is left at `timeout`, or if the count of
        unfinished work has not moved for `stuck_after` seconds (stuck predictions).
        """
        clock = time.monotonic()
        last, moved = -1, clock
        while (now := time.monotonic()) < clock + timeout:
            busy = await self.db.fetchval(
                "SELECT (SELECT count(*) FROM predictions WHERE owner = $1 AND status IN "
                "('pending', 'started')) + (SELECT count(*) FROM webhook_deliveries "
                "WHERE state = 'pending')", self.stack.owner)
            if busy == 0:
                if now - clock > 1:
                    self.console.log(f"settled in {now - clock:.1f}s")
                return True
            if busy != last:
                last, moved = busy, now
            elif now - moved > stuck_after:
                self.note("settle", f"{busy} predictions or deliveries stayed unfinished "
                                    f"(no progress for {stuck_after:g} s); later figures may "
                                    "include them.")
                return False
            await asyncio.sleep(0.25)
        self.note("settle", f"work still unfinished after {timeout:.0f} s.")
        return False

    async def tool(self, name: str, *args: str, timeout: float = 300.0) -> dict[str, Any]:
        """Run `python -m bench.tools.<name> … --out FILE` in its own process; return FILE."""
        out = self.tmp / f"{name}-{time.monotonic_ns()}.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"bench.tools.{name}", *args, "--out", str(out),
            cwd=REPO_ROOT, stdout=asyncio.subprocess.DEVNULL)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout=timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if code != 0:
            raise RuntimeError(f"bench.tools.{name} exited with {code}")
        result: dict[str, Any] = orjson.loads(out.read_bytes())
        return result

    @asynccontextmanager
    async def bare_server(self, create_body: bytes, get_body: bytes, *,
                          kafka_topic: str | None = None) -> AsyncIterator[tuple[str, int]]:
        """The baseline aiohttp server in its own process; yields its base URL and pid.
        With `kafka_topic`, its create handler first writes the body there (the bare
        durable handler: acks=all, idempotent)."""
        port = free_port()
        create_file, get_file = self.tmp / "bare-create.json", self.tmp / "bare-get.json"
        create_file.write_bytes(create_body)
        get_file.write_bytes(get_body)
        durable = (["--kafka", self.stack.kafka_bootstrap, "--topic", kafka_topic]
                   if kafka_topic else [])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.tools.bare", "--port", str(port), "--create",
            str(create_file), "--get", str(get_file), *durable, cwd=REPO_ROOT,
            start_new_session=True)
        try:
            await asyncio.to_thread(wait_until, lambda: port_open(port), timeout=30,
                                    what="bare server", log=None)
            yield f"http://127.0.0.1:{port}", proc.pid
        finally:
            await asyncio.to_thread(terminate, proc.pid, timeout=5)

    def rss(self, pid: int, *, tree: bool = False) -> int:
        """Resident bytes of a process (with `tree`, proportional set size of it and its
        children, so shared buffers of PostgreSQL's backends count once)."""
        proc = psutil.Process(pid)
        if not tree:
            return int(proc.memory_info().rss)
        total = 0
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += int(p.memory_full_info().pss)
            except psutil.Error:
                continue
        return total
