"""The executor's baseline: the same model run straight on ONNX Runtime, no Kafka.

Loads the model with `executors.runtime.LoadedModel` (same session options as the
executor: all cores as intra-op threads for a single model), then runs the model's own
preprocess → `session.run` → postprocess on its example input, `--n` inputs in batches
of `--batch` stacked along the first axis, in one thread.

    python -m bench.tools.raw_ort --model inferhook/digits --n 3000 --batch 64 --out r.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from executors.runtime import LoadedModel
from inferhook.catalog import load_catalog
from inferhook.settings import Settings


def run_batch(model: LoadedModel, inputs: list[dict[str, Any]]) -> None:
    """Preprocess each input, run them as one batch, postprocess each row."""
    feeds = [model.handler.preprocess(item) for item in inputs]
    stacked = {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}
    names = [o.name for o in model.session.get_outputs()]
    arrays = model.session.run(names, stacked)
    for row in range(len(inputs)):
        model.handler.postprocess({n: a[row:row + 1] for n, a in zip(names, arrays, strict=True)})


def measure(model_name: str, n: int, batch: int, models_dir: Path) -> dict[str, Any]:
    """Load (cold start), run once (first run), then time n inputs in batches."""
    entry = load_catalog(models_dir)[model_name]
    example = entry.manifest.example_input or {}
    started = time.perf_counter()
    model = LoadedModel.load(entry, intra_op_threads=os.cpu_count() or 2)
    run_batch(model, [example])
    cold = time.perf_counter() - started
    for _ in range(20):  # warm-up
        run_batch(model, [example] * batch)
    clock = time.perf_counter()
    done = 0
    while done < n:
        size = min(batch, n - done)
        run_batch(model, [example] * size)
        done += size
    seconds = time.perf_counter() - clock
    return {"model": model_name, "n": n, "batch": batch, "seconds": seconds,
            "per_second": n / seconds, "cold_start": cold, "provider": model.provider}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = measure(args.model, args.n, args.batch, args.models_dir or Settings().models_dir)
    Path(args.out).write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
