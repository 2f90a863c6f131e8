"""Static check of an ONNX graph against TensorRT's ONNX parser rules, before any build is tried.

`dbd-export trt` runs it first (one clear line instead of a parser error after a GPU start-up) and
the tests run it on the shipped models. Sources, cited per rule:
- [ops] onnx-tensorrt docs/operators.md (TensorRT 10.x): supported operators, their tensor types
  and restrictions; "UINT8 is only supported as network input or output tensor types".
- [importer] onnx-tensorrt ModelImporter.cpp: a node output of type UINT8 that is not a graph output
  is refused ("TensorRT does not support UINT8 types for intermediate tensors").
- [shape] TensorRT developer guide, "Execution tensors vs. shape tensors": shape tensors are Int32,
  Int64, Float or Bool, never Half.
- [range] FP16's largest value is 65504; a reduction over a large spatial map in FP16 can exceed it
  (the SRFB's ReduceMean sums 1.3e5-2.3e5 per channel at 320x416 and 640x640), so reductions must
  stay FP32. This one is our rule, not TensorRT's.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from runtime.model_info import INPUT_NAME, OUTPUT_NAMES

F32, F16, BF16 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16
I32, I64, BOOL, U8 = TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL, TensorProto.UINT8
_FLOATS = frozenset({F32, F16, BF16})
_NUMERIC = _FLOATS | {I32, I64}
_ANY = _NUMERIC | {BOOL}

# [ops] Types of each operator's data input and outputs (the operators our exports can contain).
SUPPORTED_TYPES: dict[str, frozenset[int]] = {
    **dict.fromkeys(
        (
            "Conv",
            "ConvTranspose",
            "BatchNormalization",
            "Sigmoid",
            "Softmax",
            "Gemm",
            "MatMul",
            "Clip",
            "HardSigmoid",
            "HardSwish",
            "LeakyRelu",
            "Tanh",
            "Sqrt",
            "Exp",
            "Erf",
            "Pow",
            "Ceil",
            "Floor",
            "GlobalAveragePool",
            "AveragePool",
            "Resize",
        ),
        _FLOATS,
    ),
    **dict.fromkeys(("Add", "Sub", "Mul", "Div", "Relu", "Max", "Min", "Neg", "Equal", "Range"), _NUMERIC),
    **dict.fromkeys(
        ("Concat", "Expand", "Flatten", "Gather", "Identity", "Reshape", "Shape", "Slice", "Squeeze", "Tile", "Transpose", "Unsqueeze", "Where", "Split", "Constant"), _ANY
    ),
    **dict.fromkeys(("Pad", "ReduceMean", "ReduceSum", "ReduceMax"), _NUMERIC),
    "Cast": _ANY | {U8},
    "ConstantOfShape": frozenset({F32}),
}
# [ops] Inputs that must be initializers or constants ("`axes` must be an initializer").
CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {"ReduceMean": (1,), "ReduceSum": (1,), "ReduceMax": (1,), "Slice": (3,), "Squeeze": (1,), "Unsqueeze": (1,), "Pad": (3,)}
# [shape] Inputs TensorRT treats as shape tensors.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Resize": (1, 2, 3),
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "Slice": (1, 2, 3, 4),
    "Pad": (1,),
    "ConstantOfShape": (0,),
    "Range": (0, 1, 2),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
}
REDUCTIONS = ("ReduceMean", "ReduceSum", "GlobalAveragePool", "AveragePool")
# [ops] Resize restrictions.
RESIZE_MODES = {b"nearest", b"linear"}
RESIZE_COORDINATES = {b"half_pixel", b"pytorch_half_pixel", b"tf_half_pixel_for_nn", b"asymmetric", b"align_corners"}
# [ops] "TensorRT 10.0 supports operators in the inclusive range of opset 9 to opset 20."
OPSET_RANGE = (9, 20)


def _types(model: onnx.ModelProto) -> dict[str, int]:
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    for node in g.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            types[node.output[0]] = node.attribute[0].t.data_type
    return types


def _name(t: int) -> str:
    return TensorProto.DataType.Name(t)


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def tensorrt_problems(model: onnx.ModelProto) -> list[str]:
    """Every rule the graph breaks, one line each; empty when TensorRT's parser should accept it."""
    model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    types = _types(model)
    constants = {t.name for t in g.initializer} | {n.output[0] for n in g.node if n.op_type == "Constant"}
    producers = {o: n for n in g.node for o in n.output}
    graph_outputs = {o.name for o in g.output}
    problems: list[str] = []

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        problems.append(f"opset {opset} is outside TensorRT's supported {OPSET_RANGE[0]}-{OPSET_RANGE[1]} [ops]")
    problems += _contract_problems(g)

    def from_half(name: str, seen: set[str]) -> bool:
        """Whether `name` is FP16 or computed from an FP16 tensor."""
        if name in seen or not name:
            return False
        seen.add(name)
        if types.get(name) == F16:
            return True
        node = producers.get(name)
        return node is not None and any(from_half(i, seen) for i in node.input)

    for node in g.node:
        where = f"node {node.name or node.output[0]} ({node.op_type})"
        allowed = SUPPORTED_TYPES.get(node.op_type)
        if allowed is None:
            problems.append(f"{where}: operator not in TensorRT's supported list [ops]")
            continue
        data = [node.input[0]] if node.input and node.op_type not in ("Constant", "ConstantOfShape", "Range") else []
        for tensor in [*data, *node.output]:
            t = types.get(tensor)
            if t and t not in allowed:
                problems.append(f"{where}: {_name(t)} tensor {tensor} is not supported by this operator [ops]")
        for out in node.output:
            if types.get(out) == U8 and out not in graph_outputs:
                problems.append(f"{where}: UINT8 intermediate tensor {out}; TensorRT takes UINT8 only as a network input or output [importer]")
        for idx in CONSTANT_INPUTS.get(node.op_type, ()):
            if idx < len(node.input) and node.input[idx] and node.input[idx] not in constants:
                problems.append(f"{where}: input {idx} ({node.input[idx]}) must be an initializer [ops]")
        for idx in SHAPE_INPUTS.get(node.op_type, ()):
            if idx < len(node.input) and node.input[idx] and from_half(node.input[idx], set()):
                problems.append(f"{where}: shape input {node.input[idx]} is FP16 or computed from FP16 [shape]")
        if node.op_type in REDUCTIONS and types.get(node.input[0]) == F16:
            problems.append(f"{where}: reduction in FP16 can overflow (max 65504) on large maps; keep it FP32 [range]")
        if node.op_type == "Resize":
            if _attr(node, "mode", b"nearest") not in RESIZE_MODES or _attr(node, "coordinate_transformation_mode", b"half_pixel") not in RESIZE_COORDINATES:
                problems.append(f"{where}: unsupported resize mode or coordinate transformation [ops]")
            if _attr(node, "antialias", 0):
                problems.append(f"{where}: antialiased resize is not supported [ops]")
    return problems


def _contract_problems(g: onnx.GraphProto) -> list[str]:
    """The runtime's I/O contract as TensorRT sees it: uint8 NHWC frames in, float maps out."""
    problems = []
    if [i.name for i in g.input] != [INPUT_NAME]:
        problems.append(f"inputs are {[i.name for i in g.input]}; expected one input named {INPUT_NAME}")
    else:
        t = g.input[0].type.tensor_type
        dims = t.shape.dim
        if t.elem_type != U8 or len(dims) != 4 or dims[3].dim_value != 3:
            problems.append(f"input {INPUT_NAME} must be UINT8 [N, H, W, 3]")
    outs = {o.name: o.type.tensor_type.elem_type for o in g.output}
    for name in OUTPUT_NAMES:
        if outs.get(name) not in (F32, F16):
            problems.append(f"output {name} is missing or not a float tensor")
    return problems


def onnx_precision(model: onnx.ModelProto) -> str:
    """'fp16' for a mixed-precision graph (any FP16 weight or cast), else 'fp32'."""
    if any(t.data_type == F16 for t in model.graph.initializer):
        return "fp16"
    return "fp16" if any(n.op_type == "Cast" and _attr(n, "to", 0) == F16 for n in model.graph.node) else "fp32"
