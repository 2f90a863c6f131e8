import os

# Tests share two cores with whatever else runs; one intra-op thread keeps them deterministic and fair.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def contract_onnx() -> Path:
    """The runtime's model contract in 1 KB (tests/data/make_contract_model.py): no PyTorch needed."""
    return Path(__file__).parent / "data" / "contract_tiny.onnx"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised real-time network saved as a dbd-train checkpoint (no training)."""
    torch = pytest.importorskip("torch")
    from trainer.checkpoint import save_checkpoint
    from trainer.config import ModelConfig
    from trainer.model import DefocusDepthNet

    torch.manual_seed(0)
    cfg = ModelConfig.preset("tf_efficientnet_lite0", "realtime")
    net = DefocusDepthNet(cfg, pretrained=False).eval()
    # Random BN statistics would make every map flat; a forward pass in train mode gives real ones.
    net.train()
    with torch.no_grad():
        net(torch.randn(2, 3, 64, 64))
    net.eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, {"version": 1, "model": net.state_dict(), "model_config": json.dumps(cfg.to_dict()), "epoch": 0, "metrics": "{}"})
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint exported at 64x64, the runtime's contract in miniature."""
    from export.onnx_export import OnnxExportConfig, export_onnx

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny_checkpoint, out, OnnxExportConfig(size=(64, 64)))
    return out


@pytest.fixture(scope="session")
def tiny_dynamic_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint with dynamic batch, height and width, as the default model ships."""
    from export.onnx_export import OnnxExportConfig, export_onnx

    out = tmp_path_factory.mktemp("onnx") / "tiny_dynamic.onnx"
    export_onnx(tiny_checkpoint, out, OnnxExportConfig(size=(64, 64), dynamic=True))
    return out


@pytest.fixture(scope="session")
def tiny_fp16_onnx(tiny_dynamic_onnx, tmp_path_factory) -> Path:
    """The dynamic tiny model converted to mixed FP16 by ModelOpt AutoCast (the fp16 extra)."""
    pytest.importorskip("modelopt")
    from export.precision import convert_fp16

    out = tmp_path_factory.mktemp("onnx") / "tiny_fp16.onnx"
    convert_fp16(tiny_dynamic_onnx, out)
    return out


@pytest.fixture(scope="session")
def clip_with_audio(tmp_path_factory) -> Path:
    """Twelve 96x64 frames at 25 fps with an AAC tone."""
    from fractions import Fraction

    from bench.clips import synthetic_frames, write_clip

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_clip(path, synthetic_frames(96, 64, 12), rate=Fraction(25))
    return path
