"""Write model.onnx for inferhook/spin: a Loop of 128x128 matmuls, and the example input.

The loop count is the model's only input, so one run computes for as long as asked;
model.py calibrates iterations per millisecond when the model loads. Deterministic, no
downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
SIDE = 128


def build() -> onnx.ModelProto:
    """The graph: x = tanh(x @ W) repeated `iterations` times, then the mean of x."""
    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((SIDE, SIDE)) / np.sqrt(SIDE)).astype(np.float32)
    matrix = [SIDE, SIDE]
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("MatMul", ["x_in", "W"], ["product"]),
         helper.make_node("Tanh", ["product"], ["x_out"])],
        "spin_step",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_in", TensorProto.FLOAT, matrix)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_out", TensorProto.FLOAT, matrix)])
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["keep_going"],
                          value=helper.make_tensor("true", TensorProto.BOOL, [], [True])),
         helper.make_node("Loop", ["iterations", "keep_going", "x0"], ["x_final"], body=body),
         helper.make_node("ReduceMean", ["x_final"], ["checksum"], keepdims=0)],
        "spin",
        [helper.make_tensor_value_info("iterations", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("checksum", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(weights, "W"),
                     numpy_helper.from_array(np.eye(SIDE, dtype=np.float32), "x0")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    """Write model.onnx and example_input.json next to this file."""
    (HERE / "model.onnx").write_bytes(build().SerializeToString())
    (HERE / "example_input.json").write_text(json.dumps({"milliseconds": 50}) + "\n")
    print(f"spin: wrote model.onnx, example_input.json to {HERE}")


if __name__ == "__main__":
    main()
