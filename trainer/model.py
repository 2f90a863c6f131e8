"""The defocus-and-depth network (encoder, five decoder levels, prediction fusion) and its deployable form."""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from trainer.blocks import DecoderLevel
from trainer.config import ModelConfig
from trainer.encoder import build_encoder, input_normalisation


class NetOutputs(NamedTuple):
    """Training outputs at input resolution: fused maps and the five side maps of each head (coarse to fine)."""

    defocus: torch.Tensor  # fused in-focus logit, (N, 1, H, W)
    depth: torch.Tensor  # fused depth, (N, 1, H, W)
    defocus_sides: tuple[torch.Tensor, ...]
    depth_sides: tuple[torch.Tensor, ...]


class PredictionFusion(nn.Module):
    """A 1x1 convolution over the five upsampled side maps of one head."""

    def __init__(self, levels: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(levels, 1, 1)
        # Start as the plain mean of the sides so the fused map is useful from the first step.
        nn.init.constant_(self.conv.weight, 1.0 / levels)
        nn.init.zeros_(self.conv.bias)

    def forward(self, sides: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(torch.cat(sides, dim=1))


class DefocusDepthNet(nn.Module):
    """FCN with SRFB+SAB decoders predicting an in-focus logit map and a relative depth map."""

    def __init__(self, config: ModelConfig = ModelConfig(), pretrained: bool = False) -> None:
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config.backbone, pretrained)
        enc_channels = list(self.encoder.feature_info.channels())  # strides 2, 4, 8, 16, 32
        dec = config.decoder
        # Which encoder feature (index into strides 2..32) each level adds; see DecoderLevel.
        self._skip_index: tuple[int | None, ...] = (3, 2, 1, 0, None) if dec.finest_stride == 1 else (None, 3, 2, 1, 0)
        inputs = [enc_channels[4], *dec.widths[:-1]]
        self.levels = nn.ModuleList(
            DecoderLevel(
                cin,
                cout,
                None if idx is None else enc_channels[idx],
                dec,
                upsample=dec.finest_stride == 1 or i > 0,
                skip_first=dec.finest_stride == 2,
                attention=i < 4,
            )
            for i, (cin, cout, idx) in enumerate(zip(inputs, dec.widths, self._skip_index))
        )
        self.fuse_defocus = PredictionFusion()
        self.fuse_depth = PredictionFusion()

    def _fused_and_sides(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Fused (N, 2, h, w) maps [defocus, depth] and per-level side pairs, all at the finest level's size.

        The sides are fused at the finest decoder resolution and only then upsampled to the input:
        fusion is a per-pixel linear map, so this equals fusing at input size, but costs a fraction.
        """
        feats = self.encoder(x)
        y = feats[4]
        pairs: list[torch.Tensor] = []
        for level, idx in zip(self.levels, self._skip_index):
            y, d, z = level(y, None if idx is None else feats[idx])
            pairs.append(torch.cat([d, z], dim=1))
        finest = pairs[-1].shape[-2:]
        pairs = [_resize(p, finest) for p in pairs]
        fused = torch.cat([self.fuse_defocus([p[:, :1] for p in pairs]), self.fuse_depth([p[:, 1:] for p in pairs])], dim=1)
        return fused, pairs

    def forward(self, x: torch.Tensor) -> NetOutputs:
        size = x.shape[-2:]
        fused, pairs = self._fused_and_sides(x)
        fused = _resize(fused, size)
        sides = [_resize(p, size) for p in pairs]
        return NetOutputs(
            fused[:, :1],
            fused[:, 1:],
            tuple(s[:, :1] for s in sides),
            tuple(s[:, 1:] for s in sides),
        )

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference form: in_focus = sigmoid(fused defocus) in [0, 1] (1 = in focus), and depth."""
        fused, _ = self._fused_and_sides(x)
        fused = _resize(fused, x.shape[-2:])
        return torch.sigmoid(fused[:, :1]), fused[:, 1:]


# Every input the deployed graph sees has sides that are multiples of this (see DeployableNet).
DEPLOY_STRIDE = 32


class DeployableNet(nn.Module):
    """What a video frame is in, maps out: uint8 BGR (N, H, W, 3) -> in_focus, depth (N, 1, H, W).

    Colour conversion and normalisation live in the graph so a runtime only has to resize. H and W
    must be multiples of DEPLOY_STRIDE (the runtime always sizes frames so): the encoder's "same"
    padding is then fixed (see `freeze_same_padding`) and the exported graph has no shape arithmetic.
    """

    def __init__(self, net: DefocusDepthNet) -> None:
        super().__init__()
        self.net = freeze_same_padding(copy.deepcopy(net))
        mean, std = input_normalisation(net.config.backbone)
        # Channel order reversed here (BGR in, RGB weights); scale folds the /255 into the std.
        self.register_buffer("mean", torch.tensor(mean[::-1]).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(std[::-1]).view(1, 3, 1, 1) * 255.0), persistent=False)
        self.register_buffer("rgb_index", torch.tensor([2, 1, 0]), persistent=False)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Cast before anything else: TensorRT accepts UINT8 only as a network input or output, so the
        # first node must turn it into float (onnx-tensorrt: "UINT8 is only supported as network
        # input or output tensor types"; Transpose has no UINT8 kernel).
        x = frames.to(self.mean.dtype).permute(0, 3, 1, 2)  # float32, or half for the CUDA torch backend
        x = ((x - self.mean) * self.inv_std).index_select(1, self.rgb_index)
        return self.net.predict(x)


class StaticSamePadConv(nn.Sequential):
    """TensorFlow "same" padding of a strided convolution, fixed for inputs divisible by its stride.

    timm computes that padding from the input size at run time (Shape -> Div -> Ceil -> ... -> Pad in
    ONNX). For a side divisible by the stride s it is always (k_eff - s) split floor/ceil, whatever
    the size, so a constant Pad gives the same result with no shape arithmetic in the graph.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        pads: list[int] = []
        for k, s, d in zip(reversed(conv.kernel_size), reversed(conv.stride), reversed(conv.dilation)):
            total = max((k - 1) * d + 1 - s, 0)
            pads += [total // 2, total - total // 2]
        plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation, conv.groups, conv.bias is not None)
        plain.load_state_dict(conv.state_dict())
        super().__init__(nn.ZeroPad2d(tuple(pads)), plain)


def freeze_same_padding(module: nn.Module) -> nn.Module:
    """Replace timm's run-time "same"-padding convolutions by StaticSamePadConv, in place."""
    from timm.layers import Conv2dSame

    for name, child in module.named_children():
        if isinstance(child, Conv2dSame):
            setattr(module, name, StaticSamePadConv(child))
        else:
            freeze_same_padding(child)
    return module


def normalise_rgb(images: torch.Tensor, backbone: str) -> torch.Tensor:
    """(N, 3, H, W) RGB floats in [0, 1] -> the backbone's normalised input."""
    mean, std = input_normalisation(backbone)
    m = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    return (images - m) / s


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Bilinear resize. Between decoder levels the sizes differ by a whole power of two; that factor
    is passed as a constant scale, so the exported graph needs no Shape ops to find the target size
    (TensorRT and ONNX Runtime then see a graph whose only dynamic values are the input's dims)."""
    h, w = (int(v) for v in x.shape[-2:])
    th, tw = (int(v) for v in size)
    if (h, w) == (th, tw):
        return x
    if th % h == 0 and tw % w == 0 and th // h == tw // w:
        return F.interpolate(x, scale_factor=float(th // h), mode="bilinear", align_corners=False)
    return F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False)
