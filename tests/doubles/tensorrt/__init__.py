"""Test double of the `tensorrt` Python bindings (10.x and 11.x): see tests/doubles/README.md.

Only the API dbd-rt uses exists here, with the real names, argument names and return conventions
(bool results, None for a failed build or deserialisation, RuntimeError where the bindings raise).
The ONNX parser applies onnx-tensorrt's rules itself; an engine runs its ONNX in ONNX Runtime.
"""

from __future__ import annotations

import enum
import json
import os
import sys
from typing import Any

import numpy as np

__version__ = os.environ.get("DBD_DOUBLE_TRT_VERSION", "10.13.0.35")
_MAJOR = int(__version__.split(".")[0])
_MAGIC = b"DBD-TRT-DOUBLE-ENGINE\n"


def _cuda() -> Any:
    import pycuda.driver as cuda  # the pycuda double beside this package

    return cuda


def _need_context(call: str) -> Any:
    ctx = _cuda()._current_context()
    if ctx is None or not ctx.valid:
        # TensorRT works in the current CUDA context; our code must have the primary one pushed.
        raise RuntimeError(f"{call}: no current CUDA context (CUDA_ERROR_INVALID_CONTEXT)")
    return ctx


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    BF16 = 7
    INT64 = 8


float32, float16, int8, int32, bool_, uint8, bfloat16, int64 = (
    DataType.FLOAT,
    DataType.HALF,
    DataType.INT8,
    DataType.INT32,
    DataType.BOOL,
    DataType.UINT8,
    DataType.BF16,
    DataType.INT64,
)
_NP = {
    DataType.FLOAT: np.float32,
    DataType.HALF: np.float16,
    DataType.INT8: np.int8,
    DataType.INT32: np.int32,
    DataType.BOOL: np.bool_,
    DataType.UINT8: np.uint8,
    DataType.INT64: np.int64,
}
# ONNX TensorProto element types -> TensorRT
_FROM_ONNX = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 9: DataType.BOOL, 2: DataType.UINT8, 16: DataType.BF16, 7: DataType.INT64}


def nptype(trt_type: DataType) -> type:
    if trt_type in _NP:
        return _NP[trt_type]
    raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4


if _MAJOR >= 11:

    class NetworkDefinitionCreationFlag(enum.IntEnum):
        STRONGLY_TYPED = 1  # accepted, always on in 11

    class BuilderFlag(enum.Enum):  # FP16/INT8/... removed in 11 (strong typing only)
        DEBUG = 0
        GPU_FALLBACK = 1
        REFIT = 2
        TF32 = 3

else:

    class NetworkDefinitionCreationFlag(enum.IntEnum):  # type: ignore[no-redef]
        EXPLICIT_BATCH = 0  # deprecated, ignored
        STRONGLY_TYPED = 1

    class BuilderFlag(enum.Enum):  # type: ignore[no-redef]
        FP16 = 0
        INT8 = 1
        DEBUG = 2
        GPU_FALLBACK = 3
        REFIT = 4
        TF32 = 5


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4


class Logger(ILogger):
    Severity = ILogger.Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (ILogger.Severity(i) for i in range(5))

    def __init__(self, min_severity: ILogger.Severity = ILogger.Severity.WARNING) -> None:
        if not isinstance(min_severity, ILogger.Severity):
            raise TypeError("Logger(): incompatible constructor arguments")
        self.min_severity = min_severity
        self.messages: list[tuple[ILogger.Severity, str]] = []

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        self.messages.append((severity, msg))
        if severity <= self.min_severity:
            print(f"[TRT-double] [{severity.name[0]}] {msg}", file=sys.stderr)


def _check_logger(logger: Any, what: str) -> None:
    if not isinstance(logger, ILogger):
        raise TypeError(f"{what}(): incompatible constructor arguments (logger must be a tensorrt.ILogger)")


class IHostMemory(bytes):
    """Supports the buffer protocol, as the real one does (bytes(x), f.write(x))."""

    @property
    def nbytes(self) -> int:
        return len(self)


# ----------------------------------------------------------------- ONNX parser (onnx-tensorrt rules)

_F = {"FLOAT", "FLOAT16", "BFLOAT16"}
_N = _F | {"INT32", "INT64"}
_A = _N | {"BOOL"}
# onnx-tensorrt docs/operators.md: operator -> supported tensor types (ops dbd-rt graphs can hold).
_OPS = {
    **dict.fromkeys(
        [
            "Conv",
            "BatchNormalization",
            "Sigmoid",
            "Softmax",
            "Gemm",
            "MatMul",
            "Clip",
            "Ceil",
            "Floor",
            "Sqrt",
            "Exp",
            "Erf",
            "Tanh",
            "Pow",
            "Resize",
            "GlobalAveragePool",
            "AveragePool",
            "HardSigmoid",
            "HardSwish",
            "LeakyRelu",
        ],
        _F,
    ),
    **dict.fromkeys(["Add", "Sub", "Mul", "Div", "Relu", "Max", "Min", "Neg", "Equal", "Range", "ReduceMean", "ReduceSum", "ReduceMax", "Pad"], _N),
    **dict.fromkeys(
        ["Concat", "Expand", "Flatten", "Gather", "Identity", "Reshape", "Shape", "Slice", "Squeeze", "Tile", "Transpose", "Unsqueeze", "Where", "Split", "Constant"], _A
    ),
    "Cast": _A | {"UINT8"},
}
_SHAPE_INPUTS = {"Resize": (1, 2, 3), "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Pad": (1,), "Range": (0, 1, 2), "Unsqueeze": (1,), "Squeeze": (1,)}
_MAX_OPSET = 20 if _MAJOR < 11 else 23


class ErrorCode(enum.Enum):
    SUCCESS = 0
    INTERNAL_ERROR = 1
    MEM_ALLOC_FAILED = 2
    MODEL_DESERIALIZE_FAILED = 3
    INVALID_VALUE = 4
    INVALID_GRAPH = 5
    INVALID_NODE = 6
    UNSUPPORTED_GRAPH = 7
    UNSUPPORTED_NODE = 8


class ParserError:
    def __init__(self, code: ErrorCode, desc: str, node: int = -1, node_name: str = "", node_operator: str = "") -> None:
        self._code, self._desc, self._node, self._name, self._op = code, desc, node, node_name, node_operator

    def code(self) -> ErrorCode:
        return self._code

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op

    def __str__(self) -> str:
        where = f"In node {self._node} with name: {self._name} and operator: {self._op} " if self._node >= 0 else ""
        return f"{where}({self._code.name}): {self._desc}"


class ITensor:
    def __init__(self, name: str, dtype: DataType, shape: tuple[int, ...]) -> None:
        self.name, self.dtype, self.shape = name, dtype, shape


class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.strongly_typed = _MAJOR >= 11 or bool(flags & (1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)))
        self.onnx: bytes | None = None
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]


def _dims(value_info: Any) -> tuple[int, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim)


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        if not isinstance(network, INetworkDefinition):
            raise TypeError("OnnxParser(): incompatible constructor arguments")
        _check_logger(logger, "OnnxParser")
        self.network, self.logger = network, logger
        self._errors: list[ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors.clear()

    def parse(self, model: bytes, path: str | None = None) -> bool:
        import onnx

        data = bytes(memoryview(model))
        try:
            proto = onnx.load_from_string(data)
        except Exception:
            self._errors.append(ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED, "Failed to parse ONNX model from input buffer."))
            return False
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        if not 9 <= opset <= _MAX_OPSET:
            self._errors.append(ParserError(ErrorCode.UNSUPPORTED_GRAPH, f"Unsupported ONNX opset version {opset}"))
        typed = onnx.shape_inference.infer_shapes(proto)
        g = typed.graph
        types = {v.name: onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type) for v in [*g.value_info, *g.input, *g.output]}
        types.update({t.name: onnx.TensorProto.DataType.Name(t.data_type) for t in g.initializer})
        producers = {o: n for n in g.node for o in n.output}
        outputs = {o.name for o in g.output}

        def half_upstream(name: str, seen: set[str]) -> bool:
            if not name or name in seen:
                return False
            seen.add(name)
            if types.get(name) == "FLOAT16":
                return True
            n = producers.get(name)
            return n is not None and any(half_upstream(i, seen) for i in n.input)

        for index, node in enumerate(g.node):
            err = lambda code, desc: self._errors.append(ParserError(code, desc, index, node.name, node.op_type))  # noqa: E731
            allowed = _OPS.get(node.op_type)
            if allowed is None:
                err(ErrorCode.UNSUPPORTED_NODE, f"No importer registered for op: {node.op_type}")
                continue
            data_inputs = node.input[:1] if node.op_type not in ("Constant", "Range") else []
            for t in [*data_inputs, *node.output]:
                if t and types.get(t) and types[t] not in allowed:
                    err(ErrorCode.UNSUPPORTED_NODE, f"{node.op_type} does not support {types[t]} tensors ({t})")
            for out in node.output:
                if types.get(out) == "UINT8" and out not in outputs:
                    err(ErrorCode.UNSUPPORTED_NODE, "TensorRT does not support UINT8 types for intermediate tensors!")
            for i in _SHAPE_INPUTS.get(node.op_type, ()):
                if i < len(node.input) and half_upstream(node.input[i], set()):
                    err(ErrorCode.UNSUPPORTED_NODE, f"shape tensor {node.input[i]} must be Int32, Int64, Float or Bool, not Half")
        if self._errors:
            return False
        self.network.onnx = data
        self.network._inputs = [ITensor(i.name, _FROM_ONNX[i.type.tensor_type.elem_type], _dims(i)) for i in proto.graph.input]
        self.network._outputs = [ITensor(o.name, _FROM_ONNX[o.type.tensor_type.elem_type], _dims(o)) for o in proto.graph.output]
        return True


# ----------------------------------------------------------------- builder


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002 (binding names)
        lo, mid, hi = (tuple(int(d) for d in s) for s in (min, opt, max))
        if len(mid) != len(lo) or not all(a <= b for a, b in zip(lo, mid)):
            raise RuntimeError("Shape provided for opt is inconsistent with other shapes.")
        if len(hi) != len(lo) or not all(b <= c for b, c in zip(mid, hi)):
            raise RuntimeError("Shape provided for max is inconsistent with other shapes.")
        if any(d < 0 for d in lo):
            raise RuntimeError("Shape provided for min is inconsistent with other shapes.")
        self.shapes[input] = (lo, mid, hi)

    def get_shape(self, input: str) -> list[tuple[int, ...]]:  # noqa: A002
        return list(self.shapes.get(input, ()))


class ITimingCache:
    def __init__(self, key: str, entries: int) -> None:
        self.key, self.entries = key, entries

    def serialize(self) -> IHostMemory:
        return IHostMemory(json.dumps({"timing_cache": self.key, "entries": self.entries}).encode())


def _device_key() -> str:
    dev = _need_context("timing cache").device
    return f"{dev.name()}|{dev.compute_capability()}|{__version__}"


class IBuilderConfig:
    def __init__(self) -> None:
        self.pools: dict[MemoryPoolType, int] = {}
        self.profiles: list[IOptimizationProfile] = []
        self.flags: set[Any] = set()
        self.timing_cache: ITimingCache | None = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        if not isinstance(pool, MemoryPoolType) or not isinstance(pool_size, int):
            raise TypeError("set_memory_pool_limit(): incompatible function arguments")
        self.pools[pool] = pool_size

    def set_flag(self, flag: Any) -> None:
        if not isinstance(flag, BuilderFlag):
            raise TypeError("set_flag(): incompatible function arguments")
        self.flags.add(flag)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        if not profile.shapes:
            return -1  # an invalid profile is refused with -1
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        data = bytes(memoryview(serialized_timing_cache))
        if not data:
            return ITimingCache(_device_key(), 0)
        doc = json.loads(data)
        return ITimingCache(doc["timing_cache"], doc["entries"])

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        if not isinstance(ignore_mismatch, bool):
            raise TypeError("set_timing_cache(): incompatible function arguments")
        if cache.key != _device_key() and not ignore_mismatch:
            return False  # a cache from another GPU or TensorRT is refused unless told to ignore it
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self.timing_cache


class Builder:
    def __init__(self, logger: ILogger) -> None:
        _check_logger(logger, "Builder")
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        if not isinstance(flags, int):
            raise TypeError("create_network(): incompatible function arguments (flags must be an int bit mask)")
        return INetworkDefinition(int(flags))

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
        ctx = _need_context("build_serialized_network")
        if network.onnx is None:
            self.logger.log(Logger.ERROR, "Network must have at least one output")
            return None
        if any(f.name == "FP16" for f in config.flags) and network.strongly_typed:
            self.logger.log(Logger.ERROR, "BuilderFlag::kFP16 cannot be used with a strongly typed network")
            return None
        profile: dict[str, list[list[int]]] = {}
        for tensor in network._inputs:
            dynamic = any(d < 0 for d in tensor.shape)
            chosen = next((p.shapes[tensor.name] for p in config.profiles if tensor.name in p.shapes), None)
            if dynamic and chosen is None:
                self.logger.log(Logger.ERROR, f"Network has dynamic or shape inputs, but no optimization profile has been defined ({tensor.name}).")
                return None
            if chosen is not None:
                for lo, hi, d in zip(chosen[0], chosen[2], tensor.shape):
                    if d >= 0 and not lo == hi == d:
                        self.logger.log(Logger.ERROR, f"{tensor.name}: profile does not match the static dimension {d}")
                        return None
            profile[tensor.name] = [list(s) for s in chosen] if chosen else [list(tensor.shape)] * 3
        if config.timing_cache is not None:
            config.timing_cache.entries += 1
        dev = ctx.device
        header = {
            "version": __version__,
            "gpu": dev.name(),
            "cc": list(dev.compute_capability()),
            "strongly_typed": network.strongly_typed,
            "profile": profile,
            "inputs": [[t.name, t.dtype.name, list(t.shape)] for t in network._inputs],
            "outputs": [[t.name, t.dtype.name, list(t.shape)] for t in network._outputs],
        }
        return IHostMemory(_MAGIC + json.dumps(header).encode() + b"\n" + network.onnx)


# ----------------------------------------------------------------- runtime


class Runtime:
    def __init__(self, logger: ILogger) -> None:
        _check_logger(logger, "Runtime")
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        ctx = _need_context("deserialize_cuda_engine")
        data = bytes(memoryview(serialized_engine))
        if not data.startswith(_MAGIC):
            self.logger.log(
                Logger.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)"
            )
            return None
        head, _, onnx_bytes = data[len(_MAGIC) :].partition(b"\n")
        header = json.loads(head)
        if header["version"] != __version__:
            self.logger.log(Logger.ERROR, f"The engine plan file is not compatible with this version of TensorRT, expecting library version {__version__} got {header['version']}")
            return None
        if tuple(header["cc"]) != tuple(ctx.device.compute_capability()):
            self.logger.log(Logger.ERROR, "The engine plan file is generated on an incompatible device")
            return None
        return ICudaEngine(header, onnx_bytes)


class ICudaEngine:
    def __init__(self, header: dict[str, Any], onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        self._header = header
        self._io = {n: (TensorIOMode.INPUT, DataType[t], tuple(s)) for n, t, s in header["inputs"]}
        self._io.update({n: (TensorIOMode.OUTPUT, DataType[t], tuple(s)) for n, t, s in header["outputs"]})
        self._names = [n for n, _, _ in header["inputs"]] + [n for n, _, _ in header["outputs"]]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])

    @property
    def num_io_tensors(self) -> int:
        return len(self._names)

    def get_tensor_name(self, index: int) -> str:
        return self._names[index]

    def _entry(self, name: str) -> tuple[TensorIOMode, DataType, tuple[int, ...]]:
        if name not in self._io:
            raise RuntimeError(f"Given invalid tensor name: {name}")
        return self._io[name]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._io.get(name, (TensorIOMode.NONE,))[0]

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._entry(name)[1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name)[2]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        if profile_index != 0 or name not in self._header["profile"]:
            raise RuntimeError("Invalid profile index or tensor name")
        return [tuple(s) for s in self._header["profile"][name]]

    def create_execution_context(self) -> IExecutionContext:
        _need_context("create_execution_context")
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self._shapes: dict[str, tuple[int, ...]] = {n: s for n, (m, _, s) in engine._io.items() if m == TensorIOMode.INPUT and all(d >= 0 for d in s)}
        self._addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: Any) -> bool:
        mode, _, declared = self.engine._io.get(name, (TensorIOMode.NONE, None, ()))
        dims = tuple(int(d) for d in shape)
        if mode != TensorIOMode.INPUT or len(dims) != len(declared):
            return False
        lo, _, hi = self.engine._header["profile"][name]
        if not all(a <= d <= b for a, d, b in zip(lo, dims, hi)):
            return False  # outside the optimization profile: refused, as setInputShape does
        self._shapes[name] = dims
        return True

    def _output_shape(self, name: str) -> tuple[int, ...]:
        declared = self.engine._io[name][2]
        inp = next(iter(self._shapes.values()), None)
        if inp is None:
            return declared
        n, h, w, _ = inp  # dbd-rt graphs: NHWC frames in, (N, 1, H, W) maps out
        return (n, 1, h, w) if any(d < 0 for d in declared) else declared

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        mode = self.engine.get_tensor_mode(name)
        if mode == TensorIOMode.INPUT:
            return self._shapes.get(name, self.engine._io[name][2])
        if mode == TensorIOMode.OUTPUT:
            return self._output_shape(name)
        return (-1,)

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if type(memory) is not int:
            raise TypeError("set_tensor_address(): incompatible function arguments (memory must be an int address)")
        if name not in self.engine._io:
            return False
        self._addresses[name] = memory
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        cuda = _cuda()
        _need_context("execute_async_v3")
        if type(stream_handle) is not int:
            raise TypeError("execute_async_v3(): incompatible function arguments (stream_handle must be an int)")
        stream = cuda._stream_by_handle(stream_handle)
        if stream is None:
            return False
        spans = {}
        for name, (mode, dtype, _) in self.engine._io.items():
            if name not in self._addresses:
                return False  # "address is not set for tensor"
            shape = self.get_tensor_shape(name)
            if any(d < 0 for d in shape):
                return False  # input shape not specified
            nbytes = int(np.prod(shape)) * np.dtype(nptype(dtype)).itemsize
            spans[name] = (cuda._device_span(self._addresses[name], nbytes, "enqueueV3"), shape, nptype(dtype), mode)
        session = self.engine.session

        def run() -> None:
            feeds = {n: np.frombuffer(v, dtype=t).reshape(s) for n, (v, s, t, m) in spans.items() if m == TensorIOMode.INPUT}
            names = [n for n, (_, _, _, m) in spans.items() if m == TensorIOMode.OUTPUT]
            for name, value in zip(names, session.run(names, feeds)):
                target, shape, dtype, _ = spans[name]
                target[:] = np.ascontiguousarray(value.astype(dtype).reshape(shape)).view(np.uint8).ravel()

        stream.enqueue(run)
        return True
