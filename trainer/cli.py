"""`dbd-train`: train the defocus-and-depth network."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from runtime.datasets import MaskPolarity
from trainer.config import BACKBONES, DECODER_PRESETS

app = typer.Typer(add_completion=False, help="Train the defocus blur detection network with depth distillation.")
err = Console(stderr=True, highlight=False, soft_wrap=True)

Backbone = Enum("Backbone", {b: b for b in BACKBONES}, type=str)  # type: ignore[misc]
Decoder = Enum("Decoder", {d: d for d in DECODER_PRESETS}, type=str)  # type: ignore[misc]


class Near(str, Enum):
    high = "high"
    low = "low"


class DefocusLoss(str, Enum):
    """Mirrors trainer.losses.DEFOCUS_LOSSES (kept here so --help needs no torch import)."""

    balanced_bce = "balanced-bce"
    bce_iou = "bce-iou"


class Pretrained(str, Enum):
    imagenet = "imagenet"
    none = "none"


@app.command()
def main(
    data: Optional[Path] = typer.Option(None, help="Dataset folder with images/ and masks/ paired by file stem."),
    synthetic: int = typer.Option(0, help="Render N synthetic thin-lens scenes instead of --data (true depth is the teacher)."),
    mask_in_focus: MaskPolarity = typer.Option(MaskPolarity.white, help="Mask colour that means in focus (CUHK originals: black)."),
    train_list: Optional[Path] = typer.Option(None, help="File of training stems, one per line."),
    val_list: Optional[Path] = typer.Option(None, help="File of validation stems, one per line."),
    val_fraction: float = typer.Option(0.1, help="Seeded validation share when no --val-list is given."),
    skip_bad: bool = typer.Option(False, help="Skip unreadable or mismatched files with a counted warning instead of stopping."),
    teacher: Optional[Path] = typer.Option(None, help="ONNX monocular depth model to distil from (maps cached on disk)."),
    teacher_near: Near = typer.Option(Near.low, help="Which end of the teacher's output is near (pydnetpp: low)."),
    teacher_cache: Path = typer.Option(Path(".cache/teacher"), help="Folder for cached teacher maps."),
    teacher_size: Optional[str] = typer.Option(None, help="Teacher input HxW (default: read from the ONNX input shape)."),
    teacher_layout: Optional[str] = typer.Option(None, help="Teacher input layout nhwc or nchw (default: read from the ONNX input shape)."),
    teacher_mean: str = typer.Option("0,0,0", help="Teacher input RGB mean on [0, 1] pixels."),
    teacher_std: str = typer.Option("1,1,1", help="Teacher input RGB std on [0, 1] pixels (e.g. 0.229,0.224,0.225)."),
    teacher_output: int = typer.Option(0, help="Which teacher output is the depth map."),
    backbone: Backbone = typer.Option("tf_efficientnet_lite0", help="Encoder backbone."),  # type: ignore[valid-type]
    decoder: Decoder = typer.Option("realtime", help="Decoder widths preset: realtime or the paper's."),  # type: ignore[valid-type]
    pretrained: Pretrained = typer.Option(Pretrained.imagenet, help="Encoder init: ImageNet weights or none (random)."),
    epochs: int = typer.Option(30, help="Training epochs."),
    batch: int = typer.Option(6, help="Batch size per process."),
    lr: float = typer.Option(0.05, help="SGD learning rate (poly decay after a short warm-up). The paper's 0.005 barely moves our per-pixel-mean loss in an epoch."),
    decoder_lr_mult: float = typer.Option(10.0, help="Learning-rate multiplier of the randomly initialised decoder (the encoder gets --lr)."),
    momentum: float = typer.Option(0.9, help="SGD momentum."),
    weight_decay: float = typer.Option(5e-4, help="Weight decay on conv/linear weights (not on norms and biases)."),
    gamma: float = typer.Option(0.1, help="Weight of the depth distillation loss; 0 trains without distillation."),
    defocus_loss: DefocusLoss = typer.Option(DefocusLoss.balanced_bce, help="Defocus loss: the paper's class-balanced BCE, or BCE + soft IoU (sharper, calibrated maps)."),
    alpha: float = typer.Option(1.0, help="Weight of each defocus side output."),
    beta: float = typer.Option(1.0, help="Weight of each depth side output."),
    imgsz: int = typer.Option(320, help="Square training and validation input size."),
    seed: int = typer.Option(0, help="Seed for split, init, order and augmentation."),
    workers: int = typer.Option(0, help="DataLoader worker processes."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    amp: bool = typer.Option(True, help="Mixed precision on CUDA (ignored on CPU)."),
    max_steps_per_epoch: int = typer.Option(0, help="Cap on steps per epoch (0 = all); for smoke runs."),
    stop_after_epochs: int = typer.Option(0, help="End this invocation after N epochs (0 = run to --epochs); continue with --resume."),
    out: Path = typer.Option(Path("runs/train"), help="Run folder: config.json, last.pt, best.pt, metrics.jsonl."),
    resume: Optional[Path] = typer.Option(None, help="Run folder (or last.pt) to continue exactly where it stopped."),
    multiscale: str = typer.Option("", help="Comma-separated square sizes (multiples of 32, <= --imgsz), one drawn per step, e.g. 256,320,384; empty = --imgsz only."),
    init: Optional[Path] = typer.Option(None, help="Start from this checkpoint's weights (fine-tuning: e.g. at a new --imgsz), with a fresh optimizer and schedule."),
    json_out: bool = typer.Option(False, "--json", help="Print the final epoch's record as JSON on stdout."),
) -> None:
    """Train; see README for the recipe of the shipped model."""
    from runtime.datasets import DatasetError
    from trainer.encoder import PretrainedWeightsUnavailable
    from trainer.train import TrainConfig, train

    cfg = TrainConfig(
        out=str(out),
        data=str(data) if data else None,
        synthetic=synthetic,
        mask_in_focus=mask_in_focus.value,
        train_list=str(train_list) if train_list else None,
        val_list=str(val_list) if val_list else None,
        val_fraction=val_fraction,
        skip_bad=skip_bad,
        teacher=str(teacher) if teacher else None,
        teacher_near=teacher_near.value,
        teacher_cache=str(teacher_cache),
        teacher_size=teacher_size,
        teacher_layout=teacher_layout,
        teacher_mean=teacher_mean,
        teacher_std=teacher_std,
        teacher_output=teacher_output,
        backbone=backbone.value,
        decoder=decoder.value,
        pretrained=pretrained is Pretrained.imagenet,
        epochs=epochs,
        batch=batch,
        lr=lr,
        decoder_lr_mult=decoder_lr_mult,
        momentum=momentum,
        weight_decay=weight_decay,
        gamma=gamma,
        defocus_loss=defocus_loss.value,
        alpha=alpha,
        beta=beta,
        imgsz=imgsz,
        seed=seed,
        workers=workers,
        device=device,
        amp=amp,
        max_steps_per_epoch=max_steps_per_epoch,
        stop_after_epochs=stop_after_epochs,
        init=str(init) if init else None,
        multiscale=multiscale,
    )
    if resume is not None:
        saved = resume / "config.json" if resume.is_dir() else resume.parent / "config.json"
        if saved.is_file():
            # The run's own settings, so the schedule continues exactly; only the stop point is new.
            cfg = TrainConfig(**{**json.loads(saved.read_text())["train"], "stop_after_epochs": stop_after_epochs})
    try:
        summary = train(cfg, resume=resume, console=err)
    except (DatasetError, PretrainedWeightsUnavailable, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if json_out:
        print(json.dumps(summary))
