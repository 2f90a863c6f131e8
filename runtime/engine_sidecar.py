"""The JSON written next to each TensorRT engine, and the check that it fits this machine."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.files import write_bytes_atomically


@dataclass(frozen=True)
class EngineSidecar:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"
    precision: str  # "fp16" | "fp32"
    input_shapes: dict[str, list[list[int]]]  # name -> [min, opt, max] shapes
    onnx_sha256: str
    build_seconds: float
    built_at: str
    onnx_path: str = ""  # where the engine was built from, for --rebuild

    def write(self, engine_path: Path) -> Path:
        return write_bytes_atomically(sidecar_path(engine_path), json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def read(cls, engine_path: Path) -> EngineSidecar:
        path = sidecar_path(engine_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: engine sidecar missing; rebuild with dbd-export trt")
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: unreadable engine sidecar ({exc})") from exc


def sidecar_path(engine_path: Path) -> Path:
    return Path(engine_path).with_suffix(".json")


def mismatches(sidecar: EngineSidecar, tensorrt_version: str, gpu_name: str, compute_capability: str) -> list[str]:
    """What differs between the machine an engine was built on and this one (empty: it fits).

    TensorRT engines are tied to the exact TensorRT version and to the GPU model (compute capability).
    """
    problems = []
    if sidecar.tensorrt_version != tensorrt_version:
        problems.append(f"built with TensorRT {sidecar.tensorrt_version}, this machine has {tensorrt_version}")
    if sidecar.compute_capability != compute_capability:
        problems.append(f"built for compute capability {sidecar.compute_capability}, this GPU is {compute_capability}")
    if sidecar.gpu_name != gpu_name:
        problems.append(f"built on {sidecar.gpu_name}, this GPU is {gpu_name}")
    return problems


def rebuild_hint(engine_path: Path, onnx_hint: str = "MODEL.onnx") -> str:
    return f"rebuild it on this machine: dbd-export trt {onnx_hint} --out {engine_path} (or pass --rebuild)"
