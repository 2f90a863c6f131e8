"""Checkpoints: written atomically, read without unpickling, turned back into a network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from runtime.files import write_atomically
from trainer.config import ModelConfig
from trainer.model import DefocusDepthNet

CHECKPOINT_VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    write_atomically(Path(path), lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by this trainer; weights_only=True never unpickles arbitrary objects."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: checkpoint not found") from None
    except Exception as exc:
        raise ValueError(f"{path}: not a readable dbd-rt checkpoint ({type(exc).__name__})") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise ValueError(f"{path}: not a dbd-rt checkpoint (no model / model_config entries)")
    return ckpt


def load_model(path: Path) -> tuple[DefocusDepthNet, dict[str, Any]]:
    """Rebuild the network from a checkpoint (no ImageNet weights needed: they are in the state dict)."""
    ckpt = load_checkpoint(path)
    net = DefocusDepthNet(ModelConfig.from_dict(json.loads(ckpt["model_config"])), pretrained=False)
    net.load_state_dict(ckpt["model"])
    return net.eval(), ckpt
