"""Where dbd-rt keeps what it builds once per machine (TensorRT engines, timing caches)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """$DBD_RT_CACHE/KIND, else $XDG_CACHE_HOME/dbd-rt/KIND, else ~/.cache/dbd-rt/KIND; created."""
    root = os.environ.get("DBD_RT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dbd-rt"
    path = Path(root) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
