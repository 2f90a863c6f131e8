"""`dbd-train`: train the defocus-and-depth network.

Options are parsed here into a typed TrainConfig (sizes and triples become tuples at this
boundary); the loop never sees a string to split. `dbd-train prepare-*` lives beside it."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from runtime.console import fail
from runtime.datasets import MaskPolarity
from trainer.config import BACKBONES, DECODER_PRESETS, TrainConfig, parse_floats, parse_hw_text, parse_ints

app = typer.Typer(add_completion=False, help="Train the defocus blur detection network with depth distillation.")

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


DATA, TEACHER, NETWORK, OPTIM, LOSS, RUN = "Data", "Depth teacher", "Network", "Optimisation", "Loss", "Run"


def _option(help_text: str, panel: str, *names: str, **kw: object) -> typer.models.OptionInfo:
    return typer.Option(*names, help=help_text, rich_help_panel=panel, **kw)  # type: ignore[arg-type]


@app.command()
def main(
    data: Annotated[Optional[Path], _option("Dataset folder with images/ and masks/ paired by file stem.", DATA)] = None,
    synthetic: Annotated[int, _option("Render N synthetic thin-lens scenes instead of --data (true depth is the teacher).", DATA)] = 0,
    mask_in_focus: Annotated[MaskPolarity, _option("Mask colour that means in focus (CUHK originals: black).", DATA)] = MaskPolarity.white,
    train_list: Annotated[Optional[Path], _option("File of training stems, one per line.", DATA)] = None,
    val_list: Annotated[Optional[Path], _option("File of validation stems, one per line.", DATA)] = None,
    val_fraction: Annotated[float, _option("Seeded validation share when no --val-list is given.", DATA)] = 0.1,
    skip_bad: Annotated[bool, _option("Skip unreadable or mismatched files with a counted warning instead of stopping.", DATA)] = False,
    teacher: Annotated[Optional[Path], _option("ONNX monocular depth model to distil from (maps cached on disk); MODEL_CARD.md says how to get PyDNet++.", TEACHER)] = None,
    teacher_near: Annotated[Near, _option("Which end of the teacher's output is near (pydnetpp: low).", TEACHER)] = Near.low,
    teacher_cache: Annotated[Path, _option("Folder for cached teacher maps.", TEACHER)] = Path(".cache/teacher"),
    teacher_size: Annotated[Optional[str], _option("Teacher input HxW (default: read from the ONNX input shape).", TEACHER)] = None,
    teacher_layout: Annotated[Optional[str], _option("Teacher input layout nhwc or nchw (default: read from the ONNX input shape).", TEACHER)] = None,
    teacher_mean: Annotated[str, _option("Teacher input RGB mean on [0, 1] pixels.", TEACHER)] = "0,0,0",
    teacher_std: Annotated[str, _option("Teacher input RGB std on [0, 1] pixels (e.g. 0.229,0.224,0.225).", TEACHER)] = "1,1,1",
    teacher_output: Annotated[int, _option("Which teacher output is the depth map.", TEACHER)] = 0,
    backbone: Annotated[Backbone, _option("Encoder backbone.", NETWORK)] = "tf_efficientnet_lite0",  # type: ignore[valid-type,assignment]
    decoder: Annotated[Decoder, _option("Decoder widths preset: realtime or the paper's.", NETWORK)] = "realtime",  # type: ignore[valid-type,assignment]
    pretrained: Annotated[Pretrained, _option("Encoder init: ImageNet weights or none (random).", NETWORK)] = Pretrained.imagenet,
    init: Annotated[
        Optional[Path], _option("Start from this checkpoint's weights (fine-tuning, e.g. at a new --train-size), with a fresh optimizer and schedule.", NETWORK)
    ] = None,
    epochs: Annotated[int, _option("Training epochs.", OPTIM)] = 30,
    batch: Annotated[int, _option("Batch size per process.", OPTIM)] = 6,
    lr: Annotated[float, _option("SGD learning rate (poly decay after a short warm-up). The paper's 0.005 barely moves our per-pixel-mean loss in an epoch.", OPTIM)] = 0.05,
    decoder_lr_mult: Annotated[float, _option("Learning-rate multiplier of the randomly initialised decoder (the encoder gets --lr).", OPTIM)] = 10.0,
    momentum: Annotated[float, _option("SGD momentum.", OPTIM)] = 0.9,
    weight_decay: Annotated[float, _option("Weight decay on conv/linear weights (not on norms and biases).", OPTIM)] = 5e-4,
    train_size: Annotated[int, _option("Square training and validation input size (a multiple of 32).", OPTIM)] = 320,
    multiscale: Annotated[
        str, _option("Comma-separated square sizes (multiples of 32, <= --train-size), one drawn per step, e.g. 256,320,384; empty = --train-size only.", OPTIM)
    ] = "",
    amp: Annotated[bool, _option("Mixed precision on CUDA (ignored on CPU).", OPTIM)] = True,
    gamma: Annotated[float, _option("Weight of the depth distillation loss; 0 trains without distillation.", LOSS)] = 0.1,
    defocus_loss: Annotated[DefocusLoss, _option("Defocus loss: the paper's class-balanced BCE, or BCE + soft IoU (sharper, calibrated maps).", LOSS)] = DefocusLoss.balanced_bce,
    alpha: Annotated[float, _option("Weight of each defocus side output.", LOSS)] = 1.0,
    beta: Annotated[float, _option("Weight of each depth side output.", LOSS)] = 1.0,
    out: Annotated[Path, _option("Run folder: config.json, last.pt, best.pt, metrics.jsonl.", RUN)] = Path("runs/train"),
    resume: Annotated[Optional[Path], _option("Run folder (or last.pt) to continue exactly where it stopped.", RUN)] = None,
    seed: Annotated[int, _option("Seed for split, init, order and augmentation.", RUN)] = 0,
    workers: Annotated[int, _option("DataLoader worker processes.", RUN)] = 0,
    device: Annotated[str, _option("auto, cpu, cuda or cuda:N.", RUN)] = "auto",
    max_steps_per_epoch: Annotated[int, _option("Cap on steps per epoch (0 = all); for smoke runs.", RUN)] = 0,
    stop_after_epochs: Annotated[int, _option("End this invocation after N epochs (0 = run to --epochs); continue with --resume.", RUN)] = 0,
    json_out: Annotated[bool, _option("Print the final epoch's record as JSON on stdout.", RUN, "--json")] = False,
) -> None:
    """Train; MODEL_CARD.md gives the shipped model's exact commands."""
    options = dict(locals())  # every option by name, before anything else is defined here
    from runtime.datasets import DatasetError
    from trainer.encoder import PretrainedWeightsUnavailable

    try:
        cfg = config_from_options(options)
        if resume is not None:
            saved = resume / "config.json" if resume.is_dir() else resume.parent / "config.json"
            if saved.is_file():
                # The run's own settings, so the schedule continues exactly; only the stop point is new.
                cfg = TrainConfig.from_dict({**json.loads(saved.read_text())["train"], "stop_after_epochs": stop_after_epochs})
    except ValueError as exc:
        raise fail(str(exc)) from None
    from trainer.train import train

    try:
        summary = train(cfg, resume=resume)
    except (DatasetError, PretrainedWeightsUnavailable, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    if json_out:
        print(json.dumps(summary))


def config_from_options(options: dict[str, object]) -> TrainConfig:
    """The typed TrainConfig from the command's option values: enums to their values, paths to
    strings, "HxW" and comma lists parsed here, at the boundary."""

    o = {k: v.value if isinstance(v, Enum) else v for k, v in options.items()}
    for key in ("data", "train_list", "val_list", "teacher", "init", "teacher_cache", "out"):
        o[key] = str(o[key]) if o[key] is not None else None
    o["pretrained"] = o["pretrained"] == Pretrained.imagenet.value
    o["teacher_size"] = _parsed(parse_hw_text, o["teacher_size"], "--teacher-size") if o["teacher_size"] else None
    o["teacher_mean"] = _parsed(parse_floats, o["teacher_mean"], "--teacher-mean")
    o["teacher_std"] = _parsed(parse_floats, o["teacher_std"], "--teacher-std")
    o["multiscale"] = _parsed(parse_ints, o["multiscale"], "--multiscale") if o["multiscale"] else ()
    return TrainConfig(**{k: v for k, v in o.items() if k not in ("resume", "json_out")})


def _parsed(parse, text: str, option: str):  # type: ignore[no-untyped-def]
    try:
        return parse(text)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
