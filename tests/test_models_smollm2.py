"""inferhook/smollm2 (SmolLM2-135M-Instruct, GGUF -> ONNX with a KV cache): what it answers,
how generation ends, that the cache computes what a full re-run computes, and that the
text streams as partial output when served through Kafka."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from executors.runtime import LoadedModel, run_direct
from executors.worker import Executor
from inferhook.catalog import load_catalog
from inferhook.settings import Settings
from schemas.events import Completed, EventType, Logs, Output
from tests.executor_kit import EventLog, Requests, running

MODEL = "inferhook/smollm2"
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


@pytest.fixture(scope="module")
def smollm2(built_models: Path) -> Iterator[LoadedModel]:
    yield LoadedModel.load(load_catalog(built_models)[MODEL], intra_op_threads=1)


def generate(model: LoadedModel, **input: Any) -> dict[str, Any]:
    (outcome,) = run_direct(model, [input])
    assert isinstance(outcome, dict), outcome
    return outcome


def test_greedy_chat_answer_mentions_paris(smollm2: LoadedModel) -> None:
    out = generate(smollm2, messages=CAPITAL, temperature=0, max_tokens=32)
    assert "Paris" in out["text"]
    assert out["finish_reason"] == "stop"
    usage = out["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] < 32
    # the chat template's default system prompt and the question, as ChatML
    assert usage["prompt_tokens"] > len(smollm2.state.tokenizer.encode(CAPITAL[0]["content"]).ids) + 10


def test_max_tokens_ends_with_length(smollm2: LoadedModel) -> None:
    out = generate(smollm2, messages=STORY, temperature=0, max_tokens=6)
    assert out["finish_reason"] == "length"
    assert out["usage"]["completion_tokens"] == 6
    assert len(smollm2.state.tokenizer.encode(out["text"]).ids) <= 6


def test_stop_string_ends_generation_before_it(smollm2: LoadedModel) -> None:
    free = generate(smollm2, messages=STORY, temperature=0, max_tokens=40)
    words = free["text"].split()
    assert len(words) > 12, free
    stop = f" {words[8]} {words[9]}"
    assert stop in free["text"]
    stopped = generate(smollm2, messages=STORY, temperature=0, max_tokens=40, stop=["@@@", stop])
    assert stopped["finish_reason"] == "stop"
    assert stopped["text"] == free["text"][:free["text"].index(stop)]
    assert stopped["usage"]["completion_tokens"] < free["usage"]["completion_tokens"]


def test_raw_prompt_is_continued(smollm2: LoadedModel) -> None:
    out = generate(smollm2, prompt="The capital of France is", temperature=0, max_tokens=8)
    assert "Paris" in out["text"]
    prompt_ids = smollm2.state.tokenizer.encode("The capital of France is").ids
    assert out["usage"]["prompt_tokens"] == len(prompt_ids)


def test_sampling_is_repeatable_with_a_seed_and_top_p_narrows_it(smollm2: LoadedModel) -> None:
    sampled = [generate(smollm2, messages=STORY, temperature=1.2, max_tokens=16, seed=seed)["text"]
               for seed in (7, 7, 8)]
    assert sampled[0] == sampled[1]
    assert sampled[0] != sampled[2]
    greedy = generate(smollm2, messages=STORY, temperature=0, max_tokens=16)["text"]
    assert generate(smollm2, messages=STORY, temperature=1.5, top_p=1e-6, max_tokens=16, seed=3
                    )["text"] == greedy


def test_cached_steps_give_the_logits_of_a_full_run(smollm2: LoadedModel) -> None:
    """The KV cache is exact: a prompt prefilled in two chunks then one token at a time gives
    the logits that running the whole sequence at once gives."""
    assets = smollm2.state
    ids = assets.tokenizer.encode("The quick brown fox jumps over the lazy dog because it").ids
    empty = {past: np.zeros(assets.cache_shape, dtype=np.float32) for past, _ in assets.cache_names}

    def run(tokens: list[int], cache: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        logits, *presents = smollm2.session.run(
            ["logits", *(present for _, present in assets.cache_names)],
            {"input_ids": np.asarray([tokens], dtype=np.int64), **cache})
        return logits, dict(zip((past for past, _ in assets.cache_names), presents, strict=True))

    full, _ = run(ids, empty)
    _, cache = run(ids[:5], empty)
    _, cache = run(ids[5:-2], cache)
    _, cache = run(ids[-2:-1], cache)
    stepped, cache = run(ids[-1:], cache)
    assert cache[assets.cache_names[0][0]].shape[2] == len(ids)
    assert np.argmax(stepped) == np.argmax(full)
    assert np.allclose(stepped, full, atol=2e-3), float(np.abs(stepped - full).max())


def test_text_stream_holds_back_what_a_stop_string_may_claim(smollm2: LoadedModel) -> None:
    tokenizer = smollm2.state.tokenizer
    stream = smollm2.handler.TextStream(tokenizer, ("Paris.",))
    shown: list[str] = []
    for token in tokenizer.encode("It is Paris. Yes").ids:
        stream.push(token)
        shown.append(stream.visible())
        if stream.stopped:
            break
    assert stream.stopped and stream.text == "It is "
    assert all("P" not in text for text in shown)
    assert [len(text) for text in shown] == sorted(len(text) for text in shown)


@pytest.mark.parametrize("input", [
    {"messages": CAPITAL, "prompt": "both"},
    {"messages": [{"role": "robot", "content": "hi"}]},
    {"prompt": "hi", "max_tokens": 0},
    {"prompt": "hi", "top_p": 0},
    {"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]},
])
def test_bad_input_is_input_invalid(smollm2: LoadedModel, input: dict[str, Any]) -> None:
    (outcome,) = run_direct(smollm2, [input])
    assert not isinstance(outcome, dict)
    assert outcome.reason.value == "input_invalid"
    assert not smollm2.entry.validator.is_valid(input)


async def test_served_through_kafka_streams_the_text(settings: Settings, smollm2: LoadedModel) -> None:
    async with Requests.open(settings, [MODEL]) as requests, EventLog.follow(settings) as events, \
            running(Executor.dedicated(settings, {MODEL: smollm2})):
        prediction_id = await requests.create(MODEL, {"messages": CAPITAL, "temperature": 0,
                                                      "max_tokens": 32})
        outcome = await events.outcome(prediction_id, timeout=60)
    assert outcome.type is EventType.SUCCEEDED, outcome.data
    assert isinstance(outcome.data, Completed)
    final = outcome.data.output
    assert "Paris" in final["text"]
    partial = [e.data.output for e in events.of(prediction_id) if isinstance(e.data, Output)]
    assert len(partial) >= 3, partial
    assert "".join(p["delta"] for p in partial) == partial[-1]["text"]
    for before, after in itertools.pairwise(partial):
        assert after["text"].startswith(before["text"]) and len(after["text"]) > len(before["text"])
    assert final["text"].startswith(partial[-1]["text"])
    logs = "".join(e.data.logs for e in events.of(prediction_id) if isinstance(e.data, Logs))
    assert f"{final['usage']['completion_tokens']} tokens" in logs
