"""A training run's folder: config.json, metrics.jsonl, last.pt and best.pt, each written in one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.checkpoint import save_checkpoint

# What best.pt keeps of a checkpoint: enough to run and export the network, not to resume training.
BEST_KEYS = ("version", "model", "model_config", "epoch", "metrics")


class RunFolder:
    """Writes only where `write` is true (rank 0 of a distributed run); the others call it alike."""

    def __init__(self, path: Path, write: bool = True) -> None:
        self.path, self.write = Path(path), write
        if write:
            self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, config: dict[str, Any]) -> None:
        if self.write:
            (self.path / "config.json").write_text(json.dumps(config, indent=2))

    def log(self, record: dict[str, Any]) -> None:
        """One line of metrics.jsonl (the untrained baseline is epoch 0)."""
        if self.write:
            with open(self.path / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def save_checkpoint(self, payload: dict[str, Any], best: bool) -> None:
        """last.pt always (everything --resume needs); best.pt too when this epoch is the best."""
        if not self.write:
            return
        save_checkpoint(self.path / "last.pt", payload)
        if best:
            save_checkpoint(self.path / "best.pt", {k: payload[k] for k in BEST_KEYS})
