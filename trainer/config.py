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
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        dec = dict(data.get("decoder", {}))
        for key in ("widths", "srfb_kernels"):
            if key in dec:
                dec[key] = tuple(dec[key])
        return cls(backbone=data.get("backbone", cls.backbone), decoder=DecoderConfig(**dec))

    @classmethod
    def preset(cls, backbone: str = "tf_efficientnet_lite0", decoder: str = "realtime") -> "ModelConfig":
        if decoder not in DECODER_PRESETS:
            raise ValueError(f"unknown decoder preset {decoder!r}; choose one of {', '.join(DECODER_PRESETS)}")
        return cls(backbone=backbone, decoder=DECODER_PRESETS[decoder])
