"""Frozen configuration of the network: backbone and decoder shape."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

BACKBONES = ("tf_efficientnet_lite0", "tf_efficientnet_lite2", "resnext101_32x8d", "vgg19_bn")


@dataclass(frozen=True)
class DecoderConfig:
    """Decoder shape, coarse to fine: one width per level (strides 16, 8, 4, 2, 1)."""

    widths: tuple[int, int, int, int, int] = (64, 48, 32, 24, 16)
    # Kernel sizes of the SRFB chain; each conv's dilation equals its kernel (3x3 d3, 5x5 d5, ...).
    srfb_kernels: tuple[int, ...] = (3, 5, 7)
    # Depthwise-separable convolutions: the real-time decoder's main saving on a CPU.
    separable: bool = True
    srfb_reduction: int = 4
    sab_hidden: int = 8
    # 1: the paper's arrangement, five x2 upsampling levels from stride 32 to full resolution.
    # 2: the coarsest level works in place at stride 32 and the finest ends at stride 2; the side
    #    maps are upsampled to the input bilinearly as always. Skips the full-resolution level, which
    #    alone cost over a third of a CPU frame.
    finest_stride: int = 2

    def __post_init__(self) -> None:
        if len(self.widths) != 5 or min(self.widths) < 1:
            raise ValueError(f"decoder widths must be 5 positive ints, got {self.widths}")
        if self.finest_stride not in (1, 2):
            raise ValueError(f"finest_stride must be 1 or 2, got {self.finest_stride}")
        if not self.srfb_kernels or any(k % 2 == 0 for k in self.srfb_kernels):
            raise ValueError(f"SRFB kernels must be odd, got {self.srfb_kernels}")


# The paper's widths (ResNeXt101 decoder with full convolutions) and our real-time decoder.
DECODER_PRESETS: dict[str, DecoderConfig] = {
    "paper": DecoderConfig(widths=(256, 128, 64, 64, 32), separable=False, sab_hidden=16, finest_stride=1),
    "realtime": DecoderConfig(),
}


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "tf_efficientnet_lite0"
    decoder: DecoderConfig = DecoderConfig()

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        dec = dict(data.get("decoder", {}))
        for key in ("widths", "srfb_kernels"):
            if key in dec:
                dec[key] = tuple(dec[key])
        return cls(backbone=data.get("backbone", cls.backbone), decoder=DecoderConfig(**dec))

    @classmethod
    def preset(cls, backbone: str = "tf_efficientnet_lite0", decoder: str = "realtime") -> ModelConfig:
        if decoder not in DECODER_PRESETS:
            raise ValueError(f"unknown decoder preset {decoder!r}; choose one of {', '.join(DECODER_PRESETS)}")
        return cls(backbone=backbone, decoder=DECODER_PRESETS[decoder])


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run is given, typed and checked; parsed from the CLI at its boundary.
    Saved to the run's config.json and read back by --resume (`from_dict`)."""

    out: str = "runs/train"
    data: str | None = None
    synthetic: int = 0
    mask_in_focus: str = "white"  # which mask colour means in focus (runtime.datasets.MaskPolarity)
    train_list: str | None = None
    val_list: str | None = None
    val_fraction: float = 0.1
    skip_bad: bool = False
    teacher: str | None = None
    teacher_near: str = "low"
    teacher_cache: str = ".cache/teacher"
    teacher_size: tuple[int, int] | None = None  # (height, width); None = from the ONNX input
    teacher_layout: str | None = None  # "nhwc" | "nchw"; None = from the ONNX input
    teacher_mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    teacher_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    teacher_output: int = 0
    backbone: str = "tf_efficientnet_lite0"
    decoder: str = "realtime"
    pretrained: bool = True
    epochs: int = 30
    batch: int = 6
    # 10x the paper's 0.005: our balanced BCE is a per-pixel mean, and at 0.005 one CUHK epoch left
    # the maps flat (val F-beta 0.00) where 0.05 reached 0.79.
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 50
    # The decoder starts from random weights and the encoder from ImageNet: the new layers learn
    # this many times faster (the usual practice when fine-tuning a segmentation head).
    decoder_lr_mult: float = 10.0
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 0.1
    defocus_loss: str = "balanced-bce"  # the paper's; "bce-iou" gives sharper, calibrated maps
    train_size: int = 320  # the square side every crop is resized to, and the validation size
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    amp: bool = True
    max_steps_per_epoch: int = 0  # 0 = the whole epoch; smoke runs cap it
    stop_after_epochs: int = 0  # end this invocation after N epochs (time-limited jobs); --resume continues
    init: str | None = None  # checkpoint whose weights start this run (fine-tuning); fresh optimizer and schedule
    multiscale: tuple[int, ...] = ()  # square sizes (<= train_size) one of which each step trains at

    def __post_init__(self) -> None:
        if self.train_size < 32 or self.train_size % 32:
            raise ValueError(f"--train-size must be a multiple of 32, got {self.train_size}")
        if self.multiscale and (min(self.multiscale) < 32 or max(self.multiscale) > self.train_size or any(n % 32 for n in self.multiscale)):
            raise ValueError(f"--multiscale sizes must be multiples of 32 between 32 and --train-size {self.train_size}, got {','.join(map(str, self.multiscale))}")
        if self.teacher_near not in ("high", "low"):
            raise ValueError(f"--teacher-near must be high or low, got {self.teacher_near!r}")

    def model_config(self) -> ModelConfig:
        return ModelConfig.preset(self.backbone, self.decoder)

    def sizes(self) -> list[int]:
        """The square sizes training steps run at: `train_size`, or the `multiscale` ones."""
        return sorted(set(self.multiscale)) or [self.train_size]

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainConfig:
        """A config.json's `train` entry, including those written before the typed fields: "imgsz"
        was the training size, and sizes and triples were strings ("320x480", "0,0,0")."""
        d = dict(saved)
        if "imgsz" in d:
            d["train_size"] = d.pop("imgsz")
        for key, parse in (("teacher_size", parse_hw_text), ("teacher_mean", parse_floats), ("teacher_std", parse_floats), ("multiscale", parse_ints)):
            value = d.get(key)
            if isinstance(value, str):
                d[key] = parse(value) if value else (() if key == "multiscale" else None)
            elif isinstance(value, list):
                d[key] = tuple(value)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def parse_hw_text(text: str) -> tuple[int, int]:
    """'448x640' -> (448, 640), height x width."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected HxW such as 448x640, got {text!r}") from None
    return h, w


def parse_floats(text: str, count: int = 3) -> tuple[float, ...]:
    """'0.485,0.456,0.406' -> three floats."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ValueError(f"expected {count} comma-separated numbers, got {text!r}")
    return values


def parse_ints(text: str) -> tuple[int, ...]:
    """'256,320,384' -> (256, 320, 384)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated whole numbers such as 256,320,384, got {text!r}") from None
