"""Handler for inferhook/smollm2: chat messages or a prompt -> tokens -> KV-cached decoding -> text.

The prompt runs through the graph in chunks (filling the cache), then each new token costs
one step on a one-token input. The text so far goes out as partial output after every
token that completes visible text; text that might be the start of a stop string, or half
a UTF-8 character, is held back until the next token settles it. The tokenizer, the chat
template and the end tokens come from the ONNX file's metadata (written by build.py).
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

import numpy as np
from jinja2 import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

DEFAULT_MAX_TOKENS = 128
MAX_TOKENS = 512
"""The cap on max_tokens: about a minute of generation on one busy CPU core."""
MAX_STOPS = 4
PREFILL_CHUNK = 256
"""Prompt tokens per prefill step: bounds the attention scores' memory for long prompts."""
ROLES = ("system", "user", "assistant")
REPLACEMENT = "\ufffd"
"""What the byte-level decoder gives for an incomplete UTF-8 sequence."""


# NamedTuples, not dataclasses: the runtime imports handlers without registering them in
# sys.modules, where dataclasses look up postponed annotations.
class Assets(NamedTuple):
    """What setup() reads once from the model file."""

    tokenizer: Tokenizer
    template: Template
    end_ids: frozenset[int]
    context_length: int
    cache_names: list[tuple[str, str]]
    """(past input, present output) name pairs, in the session's output order."""
    cache_shape: tuple[int, int, int, int]
    """An empty cache entry: (batch 1, KV heads, 0 positions, head size)."""


class Request(NamedTuple):
    """A validated generation request."""

    prompt: str
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int | None


def setup(model: Any) -> Assets:
    """Read the tokenizer, chat template and cache layout from the ONNX metadata."""
    session = model.session
    meta = session.get_modelmeta().custom_metadata_map
    facts = json.loads(meta["generation"])
    tokenizer = Tokenizer.from_str(meta["tokenizer"])
    tokenizer.no_padding()
    tokenizer.no_truncation()
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    presents = [o.name for o in session.get_outputs() if o.name.startswith("present.")]
    return Assets(tokenizer=tokenizer, template=environment.from_string(meta["chat_template"]),
                  end_ids=frozenset(facts["end_token_ids"]), context_length=facts["context_length"],
                  cache_names=[(n.replace("present.", "past_key_values.", 1), n) for n in presents],
                  cache_shape=(1, facts["kv_heads"], 0, facts["head_dim"]))


def _number(input: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = input.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"'{name}' must be a number from {low:g} to {high:g}")
    return float(value)


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ValueError("'messages' must be a non-empty list of {role, content}")
    for index, message in enumerate(value):
        if (not isinstance(message, dict) or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)):
            raise ValueError(f"messages[{index}] must be {{role: {'|'.join(ROLES)}, content: string}}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _stops(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or len(stops) > MAX_STOPS or not all(
            isinstance(s, str) and s for s in stops):
        raise ValueError(f"'stop' must be a non-empty string or a list of at most {MAX_STOPS} of them")
    return tuple(stops)


def parse(input: dict[str, Any], template: Template) -> Request:
    """The request in `input` (chat `messages` rendered with the model's template, or `prompt`)."""
    if ("messages" in input) == ("prompt" in input):
        raise ValueError("give either 'messages' or 'prompt'")
    if "prompt" in input:
        prompt = input["prompt"]
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("'prompt' must be a non-empty string")
    else:
        prompt = template.render(messages=_messages(input["messages"]), add_generation_prompt=True)
    seed = input.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("'seed' must be an integer")
    max_tokens = input.get("max_tokens", DEFAULT_MAX_TOKENS)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS:
        raise ValueError(f"'max_tokens' must be an integer from 1 to {MAX_TOKENS}")
    top_p = _number(input, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0.0:
        raise ValueError("'top_p' must be above 0")
    return Request(prompt=prompt, max_tokens=max_tokens,
                   temperature=_number(input, "temperature", 1.0, 0.0, 2.0), top_p=top_p,
                   stop=_stops(input.get("stop", [])), seed=seed)


def choose(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """The next token: the most likely at temperature 0, else a sample from the softmax at
    `temperature` restricted to the smallest set of tokens whose probability reaches `top_p`."""
    if temperature == 0.0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float32) / np.float32(temperature)
    weights = np.exp(scaled - scaled.max())  # unnormalised: only ratios matter below
    candidates = _nucleus(weights, top_p) if top_p < 1.0 else None
    cumulative = np.cumsum(weights if candidates is None else weights[candidates], dtype=np.float64)
    drawn = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")),
                len(cumulative) - 1)
    return drawn if candidates is None else int(candidates[drawn])


def _nucleus(weights: np.ndarray, top_p: float) -> np.ndarray:
    """The most likely tokens, most likely first, up to the first whose cumulative share of
    the weight reaches top_p. Sorts only the head of the distribution when it holds top_p
    already (the usual case: sorting the whole vocabulary costs milliseconds per token)."""
    wanted = top_p * float(weights.sum(dtype=np.float64))
    for head in (h for h in (64, 1024) if h < len(weights)):
        top = np.argpartition(-weights, head - 1)[:head]
        if float(weights[top].sum(dtype=np.float64)) >= wanted:
            break
    else:
        top = np.arange(len(weights))
    order = top[np.argsort(-weights[top], kind="stable")]
    cumulative = np.cumsum(weights[order], dtype=np.float64)
    return order[:int(np.searchsorted(cumulative, wanted)) + 1]


class TextStream:
    """The text of the generated tokens, cut at the first stop string, and how much of it
    is safe to show while generation goes on."""

    def __init__(self, tokenizer: Tokenizer, stop: tuple[str, ...]) -> None:
        self._tokenizer = tokenizer
        self._stop = stop
        self._ids: list[int] = []
        self.text = ""
        self.stopped = False
        self.shown = 0

    def push(self, token: int) -> None:
        """Add a token; sets `stopped` (and cuts `text`) once a stop string appears."""
        self._ids.append(token)
        self.text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        found = [i for i in (self.text.find(s) for s in self._stop) if i >= 0]
        if found:
            self.text, self.stopped = self.text[:min(found)], True

    def visible(self) -> str:
        """The text that no later token can change: without a trailing half character or
        a tail that may grow into a stop string."""
        if self.stopped:
            return self.text
        text = self.text.rstrip(REPLACEMENT)
        held = max((n for s in self._stop for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
        return text[:len(text) - held]


def predict(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    """Generate a completion; the text so far is published as partial output as it grows."""
    assets: Assets = ctx.state
    request = parse(input, assets.template)
    prompt_ids = assets.tokenizer.encode(request.prompt).ids
    if len(prompt_ids) + 1 > assets.context_length:
        raise ValueError(f"the prompt is {len(prompt_ids)} tokens; the context holds {assets.context_length}")
    budget = min(request.max_tokens, assets.context_length - len(prompt_ids))
    cache = {past: np.zeros(assets.cache_shape, dtype=np.float32) for past, _ in assets.cache_names}

    def step(ids: list[int]) -> np.ndarray:
        logits, *presents = ctx.run({"input_ids": np.asarray([ids], dtype=np.int64), **cache},
                                    ["logits", *(present for _, present in assets.cache_names)])
        cache.update(zip((past for past, _ in assets.cache_names), presents, strict=True))
        return np.asarray(logits[0])

    started = time.perf_counter()
    for start in range(0, len(prompt_ids), PREFILL_CHUNK):
        logits = step(prompt_ids[start:start + PREFILL_CHUNK])
    prefilled = time.perf_counter()
    rng = np.random.default_rng(request.seed)
    stream = TextStream(assets.tokenizer, request.stop)
    generated, finish = 0, "length"
    while generated < budget:
        token = choose(logits, request.temperature, request.top_p, rng)
        generated += 1
        if token in assets.end_ids:
            finish = "stop"
            break
        stream.push(token)
        if stream.stopped:
            finish = "stop"
            break
        visible = stream.visible()
        if len(visible) > stream.shown:
            ctx.output({"text": visible, "delta": visible[stream.shown:]})
            stream.shown = len(visible)
        if generated < budget:
            logits = step([token])
    elapsed = time.perf_counter() - prefilled
    ctx.log(f"prompt {len(prompt_ids)} tokens in {prefilled - started:.3f}s; {generated} tokens in "
            f"{elapsed:.3f}s ({generated / elapsed if elapsed else 0:.1f}/s); finish {finish}")
    return {"text": stream.text, "finish_reason": finish,
            "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": generated,
                      "total_tokens": len(prompt_ids) + generated}}
