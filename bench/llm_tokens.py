"""Tokens per second of inferhook/smollm2 served by its handler against a raw ONNX Runtime
loop on the same session, prompt and KV cache, plus the same loop without the cache.

- served: `LoadedModel.run_batch` on a chat request (greedy, `--tokens` new tokens at
  most): template, tokenizer, the cached decoding loop, the stop-string stream and a
  partial output per token (counted, not sent: no Kafka here).
- raw: the same prompt ids through `session.run` with the cache, argmax, as many tokens
  as the served run generated; nothing else.
- no cache: the raw loop re-running the whole sequence for every token (what the graph
  costs without past key/values); measured in the first round only.
Rates are tokens over the whole run, prefill included, so both sides count the same
thing; first-token latency is given apart. Runs alternate and the median is kept, which
makes a busy machine hurt both sides alike (the load average is recorded). Also: the file
size, load time and resident memory.

    python -m bench.llm_tokens [--tokens 48] [--runs 5] [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from executors.runtime import LoadedModel, new_run_options
from inferhook.catalog import load_catalog
from inferhook.settings import Settings

MODEL = "inferhook/smollm2"
PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
RESULTS = Path(__file__).resolve().parent / "results"


class CountingEmitter:
    """Counts partial outputs and notes when the first one came."""

    def __init__(self) -> None:
        self.outputs = 0
        self.first_at: float | None = None

    def log(self, line: str) -> None:
        """Drop the line."""

    def output(self, value: Any) -> None:
        """Count the partial output."""
        self.outputs += 1
        if self.first_at is None:
            self.first_at = time.perf_counter()


def rss_mib() -> float:
    """This process's resident memory now, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def served(model: LoadedModel, tokens: int) -> dict[str, float]:
    """One greedy chat request through the handler."""
    emitter = CountingEmitter()
    started = time.perf_counter()
    (output,) = model.run_batch([{"messages": PROMPT, "temperature": 0, "max_tokens": tokens}],
                                emitters=[emitter])
    seconds = time.perf_counter() - started
    if not isinstance(output, dict):
        raise RuntimeError(f"the served run failed: {output}")
    generated = output["usage"]["completion_tokens"]
    return {"tokens": generated, "seconds": seconds, "tokens_per_second": generated / seconds,
            "first_token_s": (emitter.first_at or started) - started, "partial_outputs": emitter.outputs}


def raw(model: LoadedModel, prompt_ids: list[int], tokens: int, *, cached: bool) -> dict[str, float]:
    """Greedy decoding straight on the session: with the KV cache, or re-running everything."""
    assets = model.state
    session, options = model.session, new_run_options()
    names = ["logits", *(present for _, present in assets.cache_names)]
    empty = {past: np.zeros(assets.cache_shape, dtype=np.float32) for past, _ in assets.cache_names}
    cache, sequence, feed = dict(empty), list(prompt_ids), list(prompt_ids)
    started = time.perf_counter()
    first = 0.0
    for index in range(tokens):
        logits, *presents = session.run(names, {"input_ids": np.asarray([feed], dtype=np.int64),
                                                **(cache if cached else empty)}, options)
        token = int(np.argmax(logits[0]))
        if index == 0:
            first = time.perf_counter() - started
        sequence.append(token)
        if cached:
            cache = dict(zip(empty, presents, strict=True))
        feed = [token] if cached else list(sequence)
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
            "first_token_s": first}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the runs."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per run (at most)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--out", type=Path, default=RESULTS / "llm_tokens.json")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    entry = load_catalog(Settings().models_dir)[MODEL]
    before = rss_mib()
    model = LoadedModel.load(entry, intra_op_threads=args.threads)
    loaded = rss_mib()
    prompt = model.state.template.render(messages=PROMPT, add_generation_prompt=True)
    prompt_ids = model.state.tokenizer.encode(prompt).ids
    served(model, 4)  # warm-up: first runs allocate
    sides: dict[str, list[dict[str, float]]] = {"served": [], "raw": [], "no_cache": []}
    for index in range(args.runs):
        sides["served"].append(served(model, args.tokens))
        n = int(sides["served"][-1]["tokens"])  # the raw loops make as many tokens
        sides["raw"].append(raw(model, prompt_ids, n, cached=True))
        if index == 0:  # slow (every step re-runs the prompt); once is enough to compare
            sides["no_cache"].append(raw(model, prompt_ids, n, cached=False))
    figures = {side: median_of(runs) for side, runs in sides.items()}
    result = {
        "model": MODEL, "provider": model.provider, "intra_op_threads": args.threads,
        "prompt_tokens": len(prompt_ids), "runs": args.runs, **figures,
        "served_vs_raw": figures["served"]["tokens_per_second"] / figures["raw"]["tokens_per_second"],
        "cache_speedup": figures["raw"]["tokens_per_second"] / figures["no_cache"]["tokens_per_second"],
        "file_mib": model.size_bytes / 2**20, "load_s": model.load_seconds,
        "rss_after_load_mib": loaded, "rss_load_delta_mib": loaded - before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average": {"start": round(load_at_start, 2), "end": round(os.getloadavg()[0], 2)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
