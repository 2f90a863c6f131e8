"""What the numbers were measured on: CPU, GPU, driver and library versions."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        from importlib.metadata import version

        return version({"cv2": "opencv-python", "tensorrt": "tensorrt"}.get(module, module))
    except Exception:
        try:
            return str(__import__(module).__version__)
        except Exception:
            return "installed"


def _nvidia_smi() -> dict[str, str] | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    name, driver = [p.strip() for p in out.splitlines()[0].split(",", 1)]
    return {"name": name, "driver": driver}


def machine_info() -> dict[str, Any]:
    gpu = _nvidia_smi()
    cuda = None
    if _version("torch"):
        import torch

        cuda = torch.version.cuda
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "os": platform.platform(),
        "python": platform.python_version(),
        "gpu": gpu["name"] if gpu else None,
        "driver": gpu["driver"] if gpu else None,
        "cuda": cuda,
        "tensorrt": _version("tensorrt"),
        "onnxruntime": _version("onnxruntime"),
        "torch": _version("torch"),
        "opencv": _version("cv2"),
        "av": _version("av"),
    }
