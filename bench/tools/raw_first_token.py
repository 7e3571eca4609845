"""First-token time of a chat model on ONNX Runtime directly: the raw side of the
first-token benchmark (bench.benchmarks.first_token).

Loads the model as a dedicated executor does, renders `--messages` with the model's chat
template and times, `--runs` times after a warm-up, greedy decoding of two tokens with the
KV cache (bench.llm_tokens.raw): `first_token` is the prompt's prefill and the argmax of
its logits (what the handler does before it publishes its first partial output), `second_token`
adds one decode step.

    python -m bench.tools.raw_first_token --model inferhook/smollm2 --messages m.json --runs 20 --out r.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

from bench.llm_tokens import raw
from executors.pool import intra_op_threads
from executors.runtime import LoadedModel
from inferhook.catalog import load_catalog
from inferhook.settings import Settings


def measure(model_name: str, messages: list[dict[str, Any]], runs: int) -> dict[str, Any]:
    """A warm-up, then `runs` timings of the first token and of the second."""
    settings = Settings()
    entry = load_catalog(settings.models_dir)[model_name]
    model = LoadedModel.load(entry, intra_op_threads=intra_op_threads(
        settings.executor.intra_op_threads, 1))
    prompt = model.state.template.render(messages=messages, add_generation_prompt=True)
    prompt_ids = model.state.tokenizer.encode(prompt).ids
    raw(model, prompt_ids, 2, cached=True)
    timings = [raw(model, prompt_ids, 2, cached=True) for _ in range(runs)]
    return {"model": model_name, "prompt_tokens": len(prompt_ids),
            "first_token": [t["first_token_s"] for t in timings],
            "second_token": [t["seconds"] for t in timings], "provider": model.provider}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--messages", type=Path, required=True, help="JSON file: chat messages")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = measure(args.model, orjson.loads(args.messages.read_bytes()), args.runs)
    args.out.write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
