"""Rebuild the DCGAN face generator as model.onnx from its torch checkpoint; write the example.

`gan-face-generate` ships `weights.tar`, a torch zip checkpoint whose `netG_state_dict`
is the PyTorch tutorial's generator (read here without torch): four
ConvTranspose(k4) + BatchNorm(eps 1e-5) + ReLU layers, 100 -> 512 -> 256 -> 128 -> 64
channels on 4 -> 8 -> 16 -> 32 pixels, then ConvTranspose to 3 channels at 64x64 and
Tanh. BatchNorm is folded into the transposed convolutions.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np

from executors.convert.onnx_graph import GraphBuilder, float_input, fold_batch_norm
from executors.convert.torch_checkpoint import load_checkpoint

HERE = Path(__file__).resolve().parent
PACKAGE = "gan-face-generate"
CHECKPOINT = "gan_face_generate/weights.tar"
BN_EPS = 1e-5
LATENT = 100
LAYERS = [(0, 1), (3, 4), (6, 7), (9, 10)]
"""Indices in the tutorial's nn.Sequential of each (ConvTranspose2d, BatchNorm2d) pair."""
FINAL = 12
"""Index of the last ConvTranspose2d (no BatchNorm; Tanh follows)."""
EXAMPLE = {"n": 4, "seed": 7}


def build(w: dict[str, np.ndarray]) -> GraphBuilder:
    """The generator as ONNX nodes: z (B, 100, 1, 1) -> image (B, 3, 64, 64) in [-1, 1]."""
    g = GraphBuilder("dcgan_faces_generator")
    x = "z"
    for layer, (conv, bn) in enumerate(LAYERS):
        weight, bias = fold_batch_norm(
            w[f"main.{conv}.weight"], w[f"main.{bn}.weight"], w[f"main.{bn}.bias"],
            w[f"main.{bn}.running_mean"], w[f"main.{bn}.running_var"], BN_EPS, out_axis=1)
        stride, pad = (1, 0) if layer == 0 else (2, 1)
        x = g.op("Relu", g.conv_transpose(x, weight, bias, stride=stride, pad=pad))
    final = w[f"main.{FINAL}.weight"]
    x = g.conv_transpose(x, final, np.zeros(final.shape[1], np.float32), stride=2, pad=1)
    g.op("Tanh", x, output="image")
    return g


def main() -> None:
    """Write model.onnx, example_input.json and example_expected.json next to this file."""
    checkpoint = Path(str(metadata.distribution(PACKAGE).locate_file(CHECKPOINT)))
    weights = load_checkpoint(checkpoint)["netG_state_dict"]
    model = build(weights).model([float_input("z", ["batch", LATENT, 1, 1])],
                                 [float_input("image", ["batch", 3, 64, 64])],
                                 doc=f"DCGAN 64x64 face generator rebuilt from {PACKAGE}")
    (HERE / "model.onnx").write_bytes(model.SerializeToString())
    (HERE / "example_input.json").write_text(json.dumps(EXAMPLE) + "\n")
    expected = {"count": EXAMPLE["n"], "seed": EXAMPLE["seed"], "size": [64, 64]}
    (HERE / "example_expected.json").write_text(json.dumps(expected) + "\n")
    print(f"dcgan-faces: wrote model.onnx ({len(model.graph.node)} nodes), example_input.json, "
          f"example_expected.json to {HERE}")


if __name__ == "__main__":
    main()
