"""One model's cold start, in parts, in a process of its own.

    python -m bench.tools.cold_start --model inferhook/digits --mode fresh \
        --spawned-at "$(date +%s.%N)" --out r.json

`fresh`: what a new executor process pays (scale from zero): process start (the parent's
spawn to this module's first line: interpreter and site start), imports (numpy,
onnxruntime, the executor's runtime), the model files read from disk (their pages first
dropped from the page cache with POSIX_FADV_DONTNEED, so the read is a real one),
session creation, handler import, setup, and the first run of the example input.

`warm`: what a pooled executor that is already up pays for a model it has not loaded: its
imports are done and another model (`--warm-with`) was loaded and run first (ORT's
environment and thread pools exist), and the files are in the page cache (read once per
host); the same parts are timed, process start and imports being zero.
"""

from __future__ import annotations

import time

FIRST_LINE = time.time()  # before anything heavy is imported

import argparse  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

CHUNK = 16 * 2**20


def read_files(paths: list[Path], *, drop_first: bool) -> float:
    """Seconds to read every file once (after dropping its cached pages when asked)."""
    if drop_first:
        for path in paths:
            with path.open("rb") as handle:
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    clock = time.perf_counter()
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(CHUNK):
                pass
    return time.perf_counter() - clock


def measure(model_name: str, mode: str, spawned_at: float, warm_with: str) -> dict[str, Any]:
    """The parts of one model's cold start, in seconds."""
    clock = time.perf_counter()
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401

    from executors.runtime import LoadedModel, onnx_paths, run_direct
    from inferhook.catalog import load_catalog
    from inferhook.settings import Settings
    imports = time.perf_counter() - clock
    catalog = load_catalog(Settings().models_dir)
    entry = catalog[model_name]
    example = entry.manifest.example_input or {}
    threads = os.cpu_count() or 2
    paths = list(onnx_paths(entry).values())
    if mode == "warm":
        other = catalog[warm_with]
        run_direct(LoadedModel.load(other, intra_op_threads=threads),
                   [other.manifest.example_input or {}])
        read_files(paths, drop_first=False)  # read once per host: the page cache has them
    read = read_files(paths, drop_first=mode == "fresh")
    model = LoadedModel.load(entry, intra_op_threads=threads)
    clock = time.perf_counter()
    run_direct(model, [example])
    first_run = time.perf_counter() - clock
    parts = {
        "process_start": max(0.0, FIRST_LINE - spawned_at) if mode == "fresh" else 0.0,
        "imports": imports if mode == "fresh" else 0.0,
        "file_read": read,
        "session": model.phases["session"],
        "handler": model.phases["handler"] + model.phases["setup"],
        "first_run": first_run,
    }
    return {"model": model_name, "mode": mode, "provider": model.provider,
            "size_mb": model.size_bytes / 2**20, "parts": parts, "total": sum(parts.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--mode", choices=["fresh", "warm"], required=True)
    parser.add_argument("--spawned-at", type=float, default=FIRST_LINE)
    parser.add_argument("--warm-with", default="inferhook/spin")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import orjson

    warm_with = args.warm_with if args.warm_with != args.model else "inferhook/digits"
    result = measure(args.model, args.mode, args.spawned_at, warm_with)
    Path(args.out).write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
