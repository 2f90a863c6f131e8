"""ONNX Runtime backend: CPU by default, CUDA or TensorRT execution providers when present."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime.backends.base import BackendError, BackendOptions, Maps
from runtime.cache import cache_dir
from runtime.model_info import DEFAULT_MODEL, INPUT_NAME, OUTPUT_NAMES, ModelError, ModelInfo

# Best first; the CPU provider is always there.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
# The input shapes ONNX Runtime's TensorRT provider builds its engine for (NHWC), so one engine
# serves every frame size instead of a rebuild per new shape; as `dbd-export trt` builds.
TRT_PROVIDER_PROFILE = {"min": "1x32x32x3", "opt": "1x256x448x3", "max": "1x1280x1280x3"}


def default_threads() -> int:
    """Physical-ish core count this process may use: ORT oversubscribes badly on small machines."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def conflicting_onnxruntime() -> str | None:
    """A warning when both onnxruntime and onnxruntime-gpu are installed: they share one module
    folder, and whichever installed last wins, so the GPU providers can silently disappear."""
    names = set()
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(dist)
            names.add(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(names) == 2:
        return "onnxruntime and onnxruntime-gpu are both installed; pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
    return None


def read_model_info(path: Path, session: ort.InferenceSession) -> ModelInfo:
    """Check the model's tensor names and shapes against the runtime's contract."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    names, outs = [i.name for i in inputs], [o.name for o in outputs]
    if names != [INPUT_NAME] or any(n not in outs for n in OUTPUT_NAMES):
        raise ModelError(f"{path}: not a dbd-rt model (inputs {names}, outputs {outs}; expected {INPUT_NAME} -> {', '.join(OUTPUT_NAMES)})")
    shape = inputs[0].shape  # [N, H, W, 3]
    if len(shape) != 4 or shape[3] != 3 or inputs[0].type != "tensor(uint8)":
        raise ModelError(f"{path}: input {INPUT_NAME} is {inputs[0].type} {shape}; expected uint8 [N, H, W, 3] BGR frames")
    for o in outputs:
        if o.name in OUTPUT_NAMES and (len(o.shape) != 4 or o.shape[1] != 1):
            raise ModelError(f"{path}: output {o.name} is {o.shape}; expected [N, 1, H, W]")
    size = (shape[1], shape[2]) if all(isinstance(d, int) for d in shape[1:3]) else None
    return ModelInfo(path, size, dict(session.get_modelmeta().custom_metadata_map))


def auto_frames_in_flight(provider: str, threads: int) -> int:
    """Frames worth inferring at once: 2 on a CPU with 2+ threads, else 1.

    Batch-1 inference of this small net splits poorly across threads: on 2 cores one frame on 2
    threads ran 44 frames/s for 46 CPU-ms each, two frames at once on 1 thread each 55 frames/s for
    36 CPU-ms each, which leaves more of the machine to decoding and encoding. The price is latency.
    """
    return 2 if provider == "CPUExecutionProvider" and threads >= 2 else 1


def provider_list(requested: str, gpu: int) -> list[str | tuple[str, dict[str, object]]]:
    """The execution providers to ask for, best first, each with its options."""
    available = ort.get_available_providers()
    if requested == "auto":
        names = [p for p in PROVIDER_PREFERENCE if p in available]
    elif requested in available:
        names = list(dict.fromkeys([requested, "CPUExecutionProvider"]))
    else:
        raise BackendError(f"ONNX Runtime provider {requested} is not available here (have: {', '.join(available)})")
    out: list[str | tuple[str, dict[str, object]]] = []
    for name in names:
        if name == "TensorrtExecutionProvider":
            engines = cache_dir("ort-tensorrt")
            out.append(
                (
                    name,
                    {
                        "device_id": gpu,
                        # Without these the provider builds an FP32 engine, and again in every process.
                        "trt_fp16_enable": True,
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(engines),
                        "trt_timing_cache_enable": True,
                        "trt_timing_cache_path": str(engines),
                        **{f"trt_profile_{k}_shapes": f"{INPUT_NAME}:{v}" for k, v in TRT_PROVIDER_PROFILE.items()},
                    },
                )
            )
        elif name == "CUDAExecutionProvider":
            out.append((name, {"device_id": gpu}))
        else:
            out.append(name)
    return out


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, provider: str = "auto", threads: int = 0, spin: bool = True, frames_in_flight: int = 1, gpu: int = 0) -> None:
        """`frames_in_flight` > 1 runs that many frames concurrently, splitting `threads` between them
        (0 = auto_frames_in_flight)."""
        providers = provider_list(provider, gpu)
        first = providers[0] if isinstance(providers[0], str) else providers[0][0]
        threads = threads or default_threads()
        if frames_in_flight <= 0:
            frames_in_flight = auto_frames_in_flight(first, threads)
        self.threads = max(1, threads // frames_in_flight)
        self._path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: provider warnings would bury our own messages
        # ORT's workers busy-wait between runs: a little faster for one frame at a time on an idle
        # machine, but concurrent runs would spin against each other.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin and frames_in_flight == 1 else "0")
        try:
            # ORT print()s its provider fallback notices ("Falling back to ...") on stdout, where
            # they would corrupt a --json document.
            with contextlib.redirect_stdout(sys.stderr):
                self.session = ort.InferenceSession(str(self._path), opts, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise ModelError(f"{self._path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None
        self.info = read_model_info(self._path, self.session)
        self.input_size = self.info.input_size
        self.provider = self.session.get_providers()[0]
        self.device = self.provider  # where it runs, as ONNX Runtime names it
        self.precision = "fp16" if self.provider == "TensorrtExecutionProvider" else "fp32"
        self.in_flight = frames_in_flight
        # ORT releases the GIL in run(), so worker threads give real parallelism.
        self._pool = ThreadPoolExecutor(frames_in_flight, thread_name_prefix="ort") if frames_in_flight > 1 else None
        self._results: deque[Maps | Future[Maps]] = deque()

    @classmethod
    def open(cls, path: Path, options: BackendOptions) -> OnnxRuntimeBackend:
        return cls(path, provider=options.provider, threads=options.threads, frames_in_flight=options.frames_in_flight, gpu=options.gpu)

    @staticmethod
    def default_model() -> Path:
        return DEFAULT_MODEL

    def describe(self) -> str:
        threads = f"{self.in_flight} frames in flight x {self.threads} threads" if self.in_flight > 1 else f"{self.threads} threads"
        return f"{self.provider}, {threads}, {self.precision}"

    def stage_ms(self) -> dict[str, float]:
        return {}

    def _run(self, frames: np.ndarray) -> Maps:
        in_focus, depth = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: frames})
        return Maps(in_focus, depth)

    def submit(self, frames: np.ndarray) -> None:
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        self._results.append(self._pool.submit(self._run, frames) if self._pool else self._run(frames))

    def collect(self) -> Maps:
        item = self._results.popleft()
        return item.result() if isinstance(item, Future) else item

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True)
        self._results.clear()
