"""ONNX Runtime backend: CPU by default, CUDA or TensorRT execution providers when present."""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime.backends.base import BackendError, Maps
from runtime.model_info import INPUT_NAME, OUTPUT_NAMES, ModelError, ModelInfo

# Best first; the CPU provider is always there.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
# Sessions kept for a dynamic graph, one per input shape (photos of many sizes would otherwise grow it).
MAX_SHAPE_SESSIONS = 8


def default_threads() -> int:
    """Physical-ish core count this process may use: ORT oversubscribes badly on small machines."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def read_model_info(path: Path, session: ort.InferenceSession) -> ModelInfo:
    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    outs = [o.name for o in session.get_outputs()]
    if names != [INPUT_NAME] or any(n not in outs for n in OUTPUT_NAMES):
        raise ModelError(f"{path}: not a dbd-rt model (inputs {names}, outputs {outs}; expected {INPUT_NAME} -> {', '.join(OUTPUT_NAMES)})")
    shape = inputs[0].shape  # [N, H, W, 3]
    size = (shape[1], shape[2]) if all(isinstance(d, int) for d in shape[1:3]) else None
    return ModelInfo(path, size, dict(session.get_modelmeta().custom_metadata_map))


def auto_frames_in_flight(provider: str, threads: int) -> int:
    """Frames worth inferring at once: 2 on a CPU with 2+ threads, else 1.

    Batch-1 inference of this small net splits poorly across threads: on 2 cores one frame on 2
    threads ran 44 frames/s for 46 CPU-ms each, two frames at once on 1 thread each 55 frames/s for
    36 CPU-ms each, which leaves more of the machine to decoding and encoding. The price is latency.
    """
    return 2 if provider == "CPUExecutionProvider" and threads >= 2 else 1


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, provider: str = "auto", threads: int = 0, spin: bool = True, frames_in_flight: int = 1) -> None:
        """`frames_in_flight` > 1 runs that many frames concurrently, splitting `threads` between them
        (0 = auto_frames_in_flight)."""
        available = ort.get_available_providers()
        if provider == "auto":
            providers = [p for p in PROVIDER_PREFERENCE if p in available]
        elif provider in available:
            providers = [provider, "CPUExecutionProvider"]
        else:
            raise BackendError(f"ONNX Runtime provider {provider} is not available here (have: {', '.join(available)})")
        threads = threads or default_threads()
        if frames_in_flight <= 0:
            frames_in_flight = auto_frames_in_flight(providers[0], threads)
        self._providers = providers
        self.threads = max(1, threads // frames_in_flight)
        # ORT's workers busy-wait between runs: a little faster for one frame at a time on an idle
        # machine, but concurrent runs would spin against each other.
        self._spin = spin and frames_in_flight == 1
        self._path = Path(path)
        self.session = self._open({})
        self.info = read_model_info(self._path, self.session)
        self.input_size = self.info.input_size
        active = self.session.get_providers()[0]
        self.device = "cpu" if active == "CPUExecutionProvider" else "cuda"
        self.provider = active
        self.precision = "fp32"
        self.in_flight = frames_in_flight
        # ORT releases the GIL in run(), so worker threads give real parallelism.
        self._pool = ThreadPoolExecutor(frames_in_flight, thread_name_prefix="ort") if frames_in_flight > 1 else None
        self._results: deque[Maps | Future[Maps]] = deque()
        # Symbolic input dims (name per axis, None where fixed) of a dynamic graph.
        self._free_dims = [d if isinstance(d, str) else None for d in self.session.get_inputs()[0].shape]
        self._by_shape: OrderedDict[tuple[int, ...], ort.InferenceSession] = OrderedDict()

    def _open(self, dims: dict[str, int]) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self._spin else "0")
        for name, value in dims.items():
            opts.add_free_dimension_override_by_name(name, value)
        try:
            return ort.InferenceSession(str(self._path), opts, providers=self._providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise ModelError(f"{self._path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None

    def session_for(self, shape: tuple[int, ...]) -> ort.InferenceSession:
        """The session to run `shape` on. A dynamic graph gets one session per shape with its free
        dims fixed, so ORT folds timm's shape-dependent padding into constants: 256x352 ran in 25 ms
        that way against 31 ms through the dynamic graph, as fast as a static export."""
        if self.input_size is not None or not any(self._free_dims):
            return self.session
        session = self._by_shape.get(shape)
        if session is None:
            dims = {name: int(n) for name, n in zip(self._free_dims, shape) if name}
            session = self._by_shape[shape] = self._open(dims)
            if len(self._by_shape) > MAX_SHAPE_SESSIONS:
                self._by_shape.popitem(last=False)
        self._by_shape.move_to_end(shape)
        return session

    @property
    def shape_sessions(self) -> tuple[tuple[int, ...], ...]:
        """Input shapes that have a fixed-shape session now, oldest use first."""
        return tuple(self._by_shape)

    @staticmethod
    def _run(session: ort.InferenceSession, frames: np.ndarray) -> Maps:
        in_focus, depth = session.run(list(OUTPUT_NAMES), {INPUT_NAME: frames})
        return in_focus, depth

    def submit(self, frames: np.ndarray) -> None:
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        session = self.session_for(frames.shape)
        self._results.append(self._pool.submit(self._run, session, frames) if self._pool else self._run(session, frames))

    def collect(self) -> Maps:
        item = self._results.popleft()
        return item.result() if isinstance(item, Future) else item

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True)
        self._results.clear()
        self._by_shape.clear()
