"""Writes tests/data/contract_tiny.onnx: the runtime's model contract in a few hundred bytes, built
with onnx.helper, so the runtime's tests run on an install without PyTorch.

uint8 BGR frames [N, H, W, 3] (dynamic) -> in_focus [N, 1, H, W] = sigmoid of local contrast, a
crude sharpness measure; depth [N, 1, H, W] = the image row, 0 at the top. Not a trained model:
it gives maps that follow the picture, which is what the runtime's tests need.

Run: python tests/data/make_contract_model.py
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper


def build() -> onnx.ModelProto:
    grey = np.array([0.114, 0.587, 0.299], np.float32).reshape(1, 3, 1, 1) / 255.0  # BGR weights
    laplace = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32).reshape(1, 1, 3, 3)
    inits = [
        numpy_helper.from_array(grey, "grey_w"),
        numpy_helper.from_array(laplace, "laplace_w"),
        numpy_helper.from_array(np.array([20.0], np.float32), "gain"),
        numpy_helper.from_array(np.array([-1.0], np.float32), "offset"),
    ]
    nodes = [
        helper.make_node("Cast", ["frames"], ["f"], to=T.FLOAT),
        helper.make_node("Transpose", ["f"], ["x"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x", "grey_w"], ["g"]),
        helper.make_node("Conv", ["g", "laplace_w"], ["l"], pads=[1, 1, 1, 1]),
        helper.make_node("Abs", ["l"], ["a"]),
        helper.make_node("AveragePool", ["a"], ["s"], kernel_shape=[5, 5], pads=[2, 2, 2, 2], count_include_pad=0),
        helper.make_node("Mul", ["s", "gain"], ["sg"]),
        helper.make_node("Add", ["sg", "offset"], ["so"]),
        helper.make_node("Sigmoid", ["so"], ["in_focus"]),
        helper.make_node("Shape", ["g"], ["shape"]),
        helper.make_node("ConstantOfShape", ["shape"], ["ones"], value=numpy_helper.from_array(np.array([1.0], np.float32))),
        helper.make_node("CumSum", ["ones", "axis2"], ["rows"]),
        helper.make_node("ReduceMax", ["rows"], ["rmax"], axes=[2], keepdims=1),
        helper.make_node("Div", ["rows", "rmax"], ["depth"]),
    ]
    inits.append(numpy_helper.from_array(np.array(2, np.int64), "axis2"))
    graph = helper.make_graph(
        nodes,
        "contract_tiny",
        [helper.make_tensor_value_info("frames", T.UINT8, ["batch", "height", "width", 3])],
        [helper.make_tensor_value_info(n, T.FLOAT, ["batch", 1, "height", "width"]) for n in ("in_focus", "depth")],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="dbd-rt tests")
    model.ir_version = 8
    for k, v in {"backbone": "none (test contract model)", "in_focus_polarity": "1 = in focus", "depth_polarity": "0 = near"}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model, full_check=True)
    return model


if __name__ == "__main__":
    out = Path(__file__).with_name("contract_tiny.onnx")
    onnx.save(build(), str(out))
    print(f"wrote {out} ({out.stat().st_size} bytes)")
