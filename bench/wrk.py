"""Closed-loop HTTP load with wrk (Debian's package) and Lua scripts in bench/lua/."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import tree_seconds

LUA = Path(__file__).resolve().parent / "lua"


@dataclass(frozen=True)
class WrkRun:
    """What one wrk run measured."""

    requests: int
    seconds: float
    errors: int
    percentiles_ms: dict[float, float]
    cpu_seconds: float | None = None
    """CPU seconds the measured server's process tree used during the run (`cpu_of`)."""

    @property
    def per_second(self) -> float:
        """Successful requests per second (non-2xx answers and socket errors excluded)."""
        return max(0, self.requests - self.errors) / self.seconds

    @property
    def cpu_ms_per_request(self) -> float | None:
        """The server's CPU milliseconds per successful request, when measured."""
        done = self.requests - self.errors
        return None if self.cpu_seconds is None or done <= 0 else self.cpu_seconds / done * 1e3

    def p(self, q: float) -> float:
        """Latency percentile in milliseconds (q among 10 … 99.9)."""
        return self.percentiles_ms[q]


def wrk_path() -> str:
    """The wrk binary, or raise saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk not found: apt-get install wrk (make bench does it)")
    return path


async def run_wrk(url: str, script: str, *script_args: str, seconds: float,
                  connections: int, threads: int = 2, warmup: float = 2.0,
                  cpu_of: int | None = None) -> WrkRun:
    """Run wrk against `url` with bench/lua/<script>.lua and parse its JSON summary.

    A `warmup`-second run goes first and is thrown away (connection pools fill, caches
    warm), so the figure is of the steady state. With `cpu_of` (the server's pid), the
    CPU its process tree used during the measured run is read from /proc.
    """
    if warmup > 0:
        await run_wrk(url, script, *script_args, seconds=warmup, connections=connections,
                      threads=threads, warmup=0)
    before = None if cpu_of is None else tree_seconds(cpu_of)
    proc = await asyncio.create_subprocess_exec(
        wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
        "-s", str(LUA / f"{script}.lua"), url, "--", *script_args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"BENCH_LUA_DIR": str(LUA), "PATH": "/usr/bin:/bin"})
    stdout, stderr = await proc.communicate()
    cpu = None if cpu_of is None or before is None else tree_seconds(cpu_of) - before
    line = next((ln for ln in stdout.decode().splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stdout.decode()}{stderr.decode()}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(data[k] for k in ("status_errors", "connect_errors", "read_errors",
                                   "write_errors", "timeouts"))
    return WrkRun(requests=data["requests"], seconds=data["duration_us"] / 1e6, errors=errors,
                  percentiles_ms={float(k): v / 1000 for k, v in data["percentiles_us"].items()},
                  cpu_seconds=cpu)
