"""Checkpoint -> ONNX with the runtime's contract: uint8 BGR NHWC `frames` in, `in_focus` and `depth` out."""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from runtime.files import write_atomically
from runtime.model_info import INPUT_NAME, OUTPUT_NAMES, STRIDE
from trainer.checkpoint import load_model
from trainer.model import DeployableNet

OPSET = 17


@dataclass(frozen=True)
class OnnxExportConfig:
    size: tuple[int, int] = (320, 320)  # (height, width) of the static graph, and the dynamic one's example
    dynamic: bool = False
    opset: int = OPSET
    simplify: bool = True


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_onnx(checkpoint: Path, out: Path, cfg: OnnxExportConfig = OnnxExportConfig()) -> onnx.ModelProto:
    """Export, simplify, check and annotate; written to a temporary name and renamed on success."""
    net, ckpt = load_model(checkpoint)
    model = DeployableNet(net).eval()
    example = torch.zeros(1, *cfg.size, 3, dtype=torch.uint8)
    dynamic_axes = None
    if cfg.dynamic:
        dynamic_axes = {INPUT_NAME: {0: "batch", 1: "height", 2: "width"}, **{n: {0: "batch", 2: "height", 3: "width"} for n in OUTPUT_NAMES}}
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                model,
                (example,),
                str(raw),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=dynamic_axes,
                opset_version=cfg.opset,
                dynamo=False,
            )
        proto = onnx.load(str(raw))
    if cfg.simplify:
        proto = _simplify(proto)
    meta = export_metadata(checkpoint, ckpt, cfg)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    # Shape annotations are inferred again by every consumer; onnxslim's double the file's size.
    del proto.graph.value_info[:]
    onnx.checker.check_model(proto, full_check=True)
    write_atomically(out, lambda tmp: onnx.save(proto, str(tmp)))
    return proto


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Fold shape arithmetic and constants (timm's 'same' padding exports as Shape/Pad chains)."""
    import onnxslim

    slim = onnxslim.slim(proto)
    return slim if slim is not None and len(slim.graph.node) <= len(proto.graph.node) else proto


def export_metadata(checkpoint: Path, ckpt: dict, cfg: OnnxExportConfig) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    model_config = json.loads(ckpt["model_config"])
    run_config_path = checkpoint.parent / "config.json"
    training_data = "unknown"
    if run_config_path.is_file():
        run = json.loads(run_config_path.read_text())
        data = run.get("data", {})
        train = run.get("train", {})
        training_data = json.dumps(
            {
                "kind": data.get("kind"),
                "root": Path(data["root"]).name if data.get("root") else None,
                "train_images": data.get("train", data.get("count")),
                "sha256": data.get("sha256"),
                "teacher": Path(train["teacher"]).name if train.get("teacher") else None,
                "gamma": train.get("gamma"),
                "epochs": train.get("epochs"),
                "train_size": train.get("train_size", train.get("imgsz")),
            }
        )
    try:
        pkg_version = version("dbd-rt")
    except PackageNotFoundError:
        pkg_version = "unknown"
    return {
        "backbone": model_config["backbone"],
        "decoder": json.dumps(model_config["decoder"]),
        "train_imgsz": str(json.loads(training_data).get("train_size") or 320) if training_data != "unknown" else "320",
        "input": f"{INPUT_NAME}: uint8 [N, H, W, 3] BGR, H and W multiples of {STRIDE}",
        "imgsz": f"{cfg.size[0]}x{cfg.size[1]}",
        "dynamic": str(cfg.dynamic).lower(),
        "in_focus_polarity": "1 = in focus, 0 = out of focus (sigmoid probability)",
        "depth_polarity": "0 = near, 1 = far (relative, distilled)",
        "training_data": training_data,
        "package_version": pkg_version,
        "checkpoint_sha256": _sha256(checkpoint),
        "epoch": str(ckpt.get("epoch", "")),
        "metrics": ckpt.get("metrics", "{}"),
    }
