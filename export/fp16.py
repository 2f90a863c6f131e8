"""FP32 ONNX -> strongly typed mixed FP16 ONNX (what TensorRT 11 builds, and 10 with STRONGLY_TYPED).

Everything float becomes float16 except a kept-FP32 set: the input conversion and normalisation
(from the uint8 input to the first convolution) and the output head (final sigmoid and resizes).
Graph inputs and outputs keep their types; Cast nodes sit on every FP32/FP16 boundary.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
# Inputs that must stay FP32 whatever the node's precision (ONNX type constraints): Resize's roi, scales.
_FP32_INPUTS = {"Resize": {1, 2}}
# Ops that carry an output type in an attribute.
_TYPED_ATTR = {"Cast": "to"}


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            out[name].append(node)
    return out


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {o: node for node in graph.node for o in node.output}


def fp32_nodes(graph: onnx.GraphProto, types: dict[str, int]) -> set[str]:
    """Names of the nodes kept in FP32: everything upstream of the first Conv, and downstream of the last one.

    The forward walk follows only the data path (the uint8 input and float tensors), not shape
    arithmetic, which in a dynamic graph reaches Resize nodes deep inside the decoder.
    """
    producers, consumers = _producers(graph), _consumers(graph)
    keep: set[str] = set()
    # Forward from the graph inputs until a Conv.
    stack = [n for i in graph.input for n in consumers[i.name]]
    while stack:
        node = stack.pop()
        if node.op_type == "Conv" or node.name in keep:
            continue
        keep.add(node.name)
        stack.extend(c for o in node.output if types.get(o) == FLOAT for c in consumers[o])
    # Backward from the graph outputs until a Conv.
    stack = [producers[o.name] for o in graph.output if o.name in producers]
    while stack:
        node = stack.pop()
        if node.op_type == "Conv" or node.name in keep:
            continue
        keep.add(node.name)
        stack.extend(producers[i] for i in node.input if i in producers)
    return keep


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A mixed-precision copy of `model`; inputs and outputs keep their original types."""
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    for node in graph.node:
        if not node.name:
            node.name = f"{node.op_type}_{id(node)}"
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(graph.value_info) + list(graph.input) + list(graph.output)}
    inits = {t.name: t for t in graph.initializer}
    for t in inits.values():
        types[t.name] = t.data_type
    for node in graph.node:
        if node.op_type == "Constant":
            types[node.output[0]] = node.attribute[0].t.data_type if node.attribute[0].type == onnx.AttributeProto.TENSOR else 0
    keep = fp32_nodes(graph, types)

    # Which float tensors live in FP16: outputs of FP16 nodes (and initializers only they read).
    half_nodes = [n for n in graph.node if n.name not in keep]
    new_nodes: list[onnx.NodeProto] = []
    cast_cache: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in cast_cache:
            out = f"{name}__to_{'fp16' if to == HALF else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [name], [out], to=to, name=f"Cast_{out}"))
            cast_cache[key] = out
        return cast_cache[key]

    tensor_precision: dict[str, int] = {}  # float tensors produced by FP16 nodes
    for node in half_nodes:
        for o in node.output:
            if types.get(o) == FLOAT:
                tensor_precision[o] = HALF
        if node.op_type == "Constant" and node.attribute[0].t.data_type == FLOAT:
            arr = numpy_helper.to_array(node.attribute[0].t).astype(np.float16)
            node.attribute[0].t.CopyFrom(numpy_helper.from_array(arr, node.attribute[0].t.name))
        attr = _TYPED_ATTR.get(node.op_type)
        if attr:
            for a in node.attribute:
                if a.name == attr and a.i == FLOAT:
                    a.i = HALF
                    tensor_precision[node.output[0]] = HALF

    converted_inits: dict[str, str] = {}

    def half_initializer(name: str) -> str:
        if name not in converted_inits:
            arr = numpy_helper.to_array(inits[name]).astype(np.float16)
            new_name = f"{name}__fp16"
            graph.initializer.append(numpy_helper.from_array(arr, new_name))
            converted_inits[name] = new_name
        return converted_inits[name]

    for node in graph.node:
        in_half = node.name not in keep
        exempt = _FP32_INPUTS.get(node.op_type, set())
        for idx, name in enumerate(node.input):
            if not name:
                continue
            is_float = types.get(name) == FLOAT
            if not is_float:
                continue
            want = HALF if in_half and idx not in exempt else FLOAT
            have = tensor_precision.get(name, FLOAT)
            if want == have:
                continue
            if name in inits and want == HALF:
                node.input[idx] = half_initializer(name)
            else:
                node.input[idx] = cast(name, want)

    # Graph outputs produced in FP16 go back to FP32 under their original names.
    for out in graph.output:
        if tensor_precision.get(out.name) == HALF:
            producer = _producers(graph)[out.name]
            inner = f"{out.name}__fp16_out"
            for i, o in enumerate(producer.output):
                if o == out.name:
                    producer.output[i] = inner
            for n in graph.node:
                for i, name in enumerate(n.input):
                    if name == out.name:
                        n.input[i] = inner
            new_nodes.append(helper.make_node("Cast", [inner], [out.name], to=FLOAT, name=f"Cast_{out.name}_out"))

    # Insert the casts in topological position: simplest is to append and re-sort.
    graph.node.extend(new_nodes)
    _toposort(graph)
    used = {i for n in graph.node for i in n.input}
    for t in list(graph.initializer):
        if t.name not in used:
            graph.initializer.remove(t)
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def _toposort(graph: onnx.GraphProto) -> None:
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        progressed = False
        rest = []
        for node in pending:
            if all(i in available for i in node.input):
                ordered.append(node)
                available.update(node.output)
                progressed = True
            else:
                rest.append(node)
        if not progressed:
            raise ValueError(f"FP16 conversion left a cycle or a dangling input at {rest[0].name}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
