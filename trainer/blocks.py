"""Decoder building blocks: SRFB, SAB and one decoder level (paper §3.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from trainer.config import DecoderConfig


class ConvBNReLU(nn.Sequential):
    """k x k convolution (optionally depthwise-separable and dilated), batch norm, ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, dilation: int = 1, separable: bool = False) -> None:
        pad = dilation * (kernel // 2)
        if separable and kernel > 1:
            layers: list[nn.Module] = [
                nn.Conv2d(cin, cin, kernel, padding=pad, dilation=dilation, groups=cin, bias=False),
                nn.Conv2d(cin, cout, 1, bias=False),
            ]
        else:
            layers = [nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False)]
        super().__init__(*layers, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SelectiveReceptionFieldBlock(nn.Module):
    """Feature pyramid of the input plus a chain of convs whose kernel and dilation grow together,
    merged by a global selective attention (softmax across branches, per channel).

    Including the original feature lets the other branches learn residuals of it (paper §3.2).
    """

    def __init__(self, channels: int, kernels: tuple[int, ...] = (3, 5, 7), reduction: int = 4, separable: bool = True) -> None:
        super().__init__()
        self.chain = nn.ModuleList(ConvBNReLU(channels, channels, k, dilation=k, separable=separable) for k in kernels)
        hidden = max(channels // reduction, 8)
        self.squeeze = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True))
        self.branch_fc = nn.ModuleList(nn.Linear(hidden, channels) for _ in range(len(kernels) + 1))

    def branch_weights(self, branches: list[torch.Tensor]) -> torch.Tensor:
        """Per-channel weights of each branch, shape (N, B, C); they sum to 1 over B."""
        pooled = _sum(branches).mean(dim=(2, 3))
        z = self.squeeze(pooled)
        logits = torch.stack([fc(z) for fc in self.branch_fc], dim=1)
        return logits.softmax(dim=1)

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [x]
        for conv in self.chain:
            out.append(conv(out[-1]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = self.branches(x)
        weights = self.branch_weights(branches)
        return _sum([w[..., None, None] * b for w, b in zip(weights.unbind(1), branches)])


def _sum(tensors: list[torch.Tensor]) -> torch.Tensor:
    # Chained adds rather than stack().sum(): the stack costs a full copy at every resolution.
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total


class UpsampleConv(nn.Module):
    """Bilinear x2 upsampling followed by a (separable) 3x3 conv, BN, ReLU.

    Separable form: the pointwise conv runs *before* the upsampling. Both are linear, so they commute
    exactly, and the channel change then costs a quarter of the pixels.
    """

    def __init__(self, cin: int, cout: int, separable: bool) -> None:
        super().__init__()
        self.separable = separable
        if separable:
            self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
            self.conv = nn.Sequential(nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        else:
            self.pointwise = nn.Identity()
            self.conv = ConvBNReLU(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Upsampling then convolution, not transposed convolution: no checkerboard artefacts.
        x = F.interpolate(self.pointwise(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(x)


class SupervisionGuidedAttentionBlock(nn.Module):
    """Spatial attention generated from the two side outputs (defocus logit, depth)."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(2, hidden, 3),
            nn.Conv2d(hidden, 1, 3, padding=1),
        )

    def attention(self, defocus: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(torch.cat([defocus, depth], dim=1)))

    def forward(self, features: torch.Tensor, defocus: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return features * self.attention(defocus, depth)


class DecoderLevel(nn.Module):
    """One decoder level: [upsample x2 + conv], SRFB, side classifiers, SAB, and one encoder feature.

    `skip_first=False` is the paper's order: the encoder feature of the next level is added after the
    SAB, at this level's output resolution. `skip_first=True` adds this level's own encoder feature
    right after the up-conv instead, which lets the coarsest level run in place at stride 32 and the
    finest end at stride 2 (the real-time arrangement, see DecoderConfig.finest_stride).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        skip_channels: int | None,
        config: DecoderConfig,
        upsample: bool = True,
        skip_first: bool = False,
        attention: bool = True,
    ) -> None:
        super().__init__()
        sep = config.separable
        self.up_conv = UpsampleConv(cin, cout, sep) if upsample else ConvBNReLU(cin, cout, 3, separable=sep)
        self.srfb = SelectiveReceptionFieldBlock(cout, config.srfb_kernels, config.srfb_reduction, sep)
        self.defocus_side = nn.Conv2d(cout, 1, 1)
        self.depth_side = nn.Conv2d(cout, 1, 1)
        # SAB rescales features for the next level, so the last level (whose features feed nothing) has none.
        self.sab = SupervisionGuidedAttentionBlock(config.sab_hidden) if attention else None
        self.skip = nn.Sequential(nn.Conv2d(skip_channels, cout, 1, bias=False), nn.BatchNorm2d(cout)) if skip_channels else None
        self.skip_first = skip_first

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.up_conv(x)
        if self.skip_first:
            x = self._add_skip(x, skip)
        x = self.srfb(x)
        defocus, depth = self.defocus_side(x), self.depth_side(x)
        if self.sab is not None:
            x = self.sab(x, defocus, depth)
        if not self.skip_first:
            x = self._add_skip(x, skip)
        return x, defocus, depth

    def _add_skip(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        return x if self.skip is None or skip is None else x + self.skip(skip)
