"""A model's own handler on ONNX Runtime directly, one input at a time, no Kafka: the raw
side of the real-time-factor benchmark (bench.benchmarks.speech).

Loads the model as a dedicated executor does (`LoadedModel.load`, the executor's intra-op
threads for one model), runs `--input` (a JSON file holding one model input) once to warm
up, then `--runs` more times, and writes each run's seconds and the last output.

    python -m bench.tools.raw_handler --model inferhook/piper-joe --input in.json --runs 5 --out r.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import orjson

from executors.errors import PredictionFailed
from executors.pool import intra_op_threads
from executors.runtime import LoadedModel
from inferhook.catalog import load_catalog
from inferhook.settings import Settings


def timed(model: LoadedModel, payload: dict[str, Any]) -> tuple[float, Any]:
    """Seconds one input takes through the handler, and its output."""
    started = time.perf_counter()
    (outcome,) = model.run_batch([payload])
    seconds = time.perf_counter() - started
    if isinstance(outcome, PredictionFailed):
        raise RuntimeError(f"{model.name} failed: {outcome}")
    return seconds, outcome


def measure(model_name: str, payload: dict[str, Any], runs: int) -> dict[str, Any]:
    """Warm-up run, then `runs` timed ones."""
    settings = Settings()
    entry = load_catalog(settings.models_dir)[model_name]
    model = LoadedModel.load(entry, intra_op_threads=intra_op_threads(
        settings.executor.intra_op_threads, 1))
    timed(model, payload)
    seconds: list[float] = []
    output: Any = None
    for _ in range(runs):
        took, output = timed(model, payload)
        seconds.append(took)
    return {"model": model_name, "seconds": seconds, "output": output,
            "provider": model.provider}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", type=Path, required=True, help="JSON file: one model input")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = measure(args.model, orjson.loads(args.input.read_bytes()), args.runs)
    args.out.write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
