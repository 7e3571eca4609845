"""A small builder for ONNX graphs made from numpy weights (conv nets rebuilt at set-up).

Each method adds a node and returns the name of its output, so a network reads as a
chain of calls. Batch normalisation is folded into the preceding convolution's weights
(`fold_batch_norm`), as inference needs only the running statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def fold_batch_norm(weight: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
                    var: np.ndarray, eps: float, *, out_axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Weight and bias of a bias-free convolution followed by inference-mode BatchNorm.

    `out_axis` is the weight's output-channel axis: 0 for Conv, 1 for ConvTranspose.
    """
    scale = gamma / np.sqrt(var + eps)
    shape = [1] * weight.ndim
    shape[out_axis] = -1
    return (weight * scale.reshape(shape)).astype(np.float32), (beta - mean * scale).astype(np.float32)


@dataclass
class GraphBuilder:
    """Collects nodes and initializers; `model()` gives the checked ONNX model."""

    name: str
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    _count: int = 0

    def _fresh(self, op: str) -> str:
        self._count += 1
        return f"{op.lower()}_{self._count}"

    def constant(self, array: np.ndarray, hint: str = "w") -> str:
        """Add an initializer; return its name."""
        name = f"{hint}_{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attributes: Any) -> str:
        """Add one node; return the name of its (single) output."""
        out = output or self._fresh(op_type)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attributes))
        return out

    def conv(self, x: str, weight: np.ndarray, bias: np.ndarray, *, stride: int = 1, group: int = 1
             ) -> str:
        """Conv with symmetric padding kernel//2 (weight: out, in/group, k, k)."""
        k = weight.shape[-1]
        return self.op("Conv", x, self.constant(weight), self.constant(bias, "b"),
                       kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group)

    def conv_transpose(self, x: str, weight: np.ndarray, bias: np.ndarray, *, stride: int, pad: int
                       ) -> str:
        """ConvTranspose (weight: in, out, k, k), as torch's ConvTranspose2d(stride, padding)."""
        k = weight.shape[-1]
        return self.op("ConvTranspose", x, self.constant(weight), self.constant(bias, "b"),
                       kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def relu6(self, x: str) -> str:
        """min(max(x, 0), 6)."""
        return self.op("Clip", x, self.constant(np.array(0.0, np.float32), "lo"),
                       self.constant(np.array(6.0, np.float32), "hi"))

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
              doc: str = "") -> onnx.ModelProto:
        """The finished model, opset OPSET, checked by onnx.checker."""
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="inferhook", doc_string=doc)
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def float_input(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    """A float32 graph input or output; strings in `shape` are symbolic dimensions."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
