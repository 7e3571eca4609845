"""Sampling profiles of the services during a run (py-spy; `--profile NAME` records one
for the whole run, the `profiles` benchmark each service under a fixed load).

py-spy writes collapsed stacks; `summarize` turns them into the functions with the most
samples on top of the stack (self time) and in the stack (total time), and self time by
package (the first folder of a frame's file: ingest, sqlalchemy, asyncio, …).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

RATE = 100
"""Samples per second."""
_FILE = re.compile(r"\((?P<file>[^():]+):\d+\)$")


def start(pid: int, raw: Path, *, by_function: bool = False,
          gil: bool = False) -> subprocess.Popen[bytes] | None:
    """Start `py-spy record` on pid without pausing it (None when py-spy is missing).
    `by_function`: a frame is a function (its first line), not the line running.
    `gil`: only samples where a thread holds the GIL (see bench.benchmarks.profiles)."""
    spy = shutil.which("py-spy") or str(Path(__file__).resolve().parent.parent / ".venv/bin/py-spy")
    if not Path(spy).exists():
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", str(RATE), "--format",
                             "raw", "--output", str(raw), "--nonblocking",
                             *(["--function"] if by_function else []),
                             *(["--gil"] if gil else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def package(frame: str) -> str:
    """The package a frame's code is in: `execute (sqlalchemy/engine/base.py:1)` → sqlalchemy."""
    found = _FILE.search(frame)
    if found is None:
        return "?"
    parts = Path(found["file"]).parts
    return parts[0] if len(parts) > 1 else Path(found["file"]).stem


def summarize(raw: Path, top: int = 30) -> str:
    """The hottest functions of a collapsed-stack file, by self and by total samples, and
    self samples by package."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        samples += int(count)
        own[frames[-1]] += int(count)
        packages[package(frames[-1])] += int(count)
        for frame in set(frames):
            total[frame] += int(count)
    if not samples:
        return "0 samples\n"
    lines = [f"{samples} samples ({RATE}/s: {samples / RATE:.1f} s)",
             "", "self, by package:"]
    lines += [f"{100 * n / samples:5.1f}%  {p}" for p, n in packages.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "total:"]
    lines += [f"{100 * n / samples:5.1f}%  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines) + "\n"
