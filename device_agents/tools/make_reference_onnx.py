"""Regenerate edgeprune_agent/data/reference_conv32_16x16.onnx (needs the onnx package; the agent does not)."""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

weight = np.random.default_rng(0).standard_normal((32, 32, 3, 3)).astype(np.float32) * 0.05
graph = helper.make_graph(
    [helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
     helper.make_node("Relu", ["conv"], ["output"])],
    "edgeprune_reference",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 32, 16, 16])],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 32, 16, 16])],
    [numpy_helper.from_array(weight, "w")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeprune")
model.ir_version = 8
onnx.checker.check_model(model)
out = Path(__file__).resolve().parents[1] / "edgeprune_agent" / "data" / "reference_conv32_16x16.onnx"
out.write_bytes(model.SerializeToString())
print(out, out.stat().st_size)
