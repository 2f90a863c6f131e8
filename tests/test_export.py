"""ONNX export (contract, metadata, parity, dynamic shapes), FP16 conversion, engine sidecars."""

from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from typer.testing import CliRunner  # noqa: E402

from export.cli import app as export_app  # noqa: E402
from export.fp16 import convert_to_fp16  # noqa: E402
from export.onnx_export import OnnxExportConfig, export_onnx, parse_imgsz  # noqa: E402
from runtime.engine_sidecar import EngineSidecar, mismatches  # noqa: E402
from trainer.model import DeployableNet  # noqa: E402
from trainer.train import load_model  # noqa: E402

DAISY = Path(__file__).parent / "data" / "daisy.jpg"
runner = CliRunner()


def _run(path, frames):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"frames": frames})


def _torch(ckpt, frames):
    net, _ = load_model(ckpt)
    with torch.no_grad():
        return [t.numpy() for t in DeployableNet(net).eval()(torch.from_numpy(frames))]


def test_contract_checker_and_metadata(tiny_onnx):
    m = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(m, full_check=True)
    assert m.opset_import[0].version >= 17
    (inp,) = m.graph.input
    assert inp.name == "frames" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 64, 64, 3]
    assert [o.name for o in m.graph.output] == ["in_focus", "depth"]
    meta = {p.key: p.value for p in m.metadata_props}
    for key in ("backbone", "decoder", "train_imgsz", "in_focus_polarity", "training_data", "package_version", "checkpoint_sha256"):
        assert meta.get(key), key
    # Simplified: no Shape arithmetic left from timm's "same" padding in the static graph.
    assert not [n for n in m.graph.node if n.op_type == "Shape"]


def test_onnx_matches_torch_on_random_and_real_frames(tiny_checkpoint, tiny_onnx):
    rand = np.random.default_rng(3).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    real = cv2.resize(cv2.imread(str(DAISY)), (64, 64), interpolation=cv2.INTER_AREA)[None]
    for frames in (rand, real):
        got, want = _run(tiny_onnx, frames), _torch(tiny_checkpoint, frames)
        assert got[0].shape == (1, 1, 64, 64)
        assert np.abs(got[0] - want[0]).max() <= 1e-4
        assert 0 <= got[0].min() and got[0].max() <= 1


def test_dynamic_export_runs_at_two_sizes(tiny_checkpoint, tiny_dynamic_onnx):
    for h, w in ((64, 96), (96, 64)):
        frames = np.random.default_rng(h).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        got, want = _run(tiny_dynamic_onnx, frames), _torch(tiny_checkpoint, frames)
        assert got[0].shape == got[1].shape == (2, 1, h, w)
        assert np.abs(got[0] - want[0]).max() <= 1e-4


def test_fp16_conversion_keeps_io_types_and_stays_close(tiny_onnx, tmp_path):
    half = convert_to_fp16(onnx.load(str(tiny_onnx)))
    onnx.checker.check_model(half)
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [o.type.tensor_type.elem_type for o in half.graph.output] == [onnx.TensorProto.FLOAT] * 2
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in half.graph.initializer)
    # The final sigmoid stays in FP32.
    sig = [n for n in half.graph.node if n.op_type == "Sigmoid"][-1]
    producers = {o: n for n in half.graph.node for o in n.output}
    assert producers[sig.input[0]].op_type != "Cast" or producers[sig.input[0]].attribute[0].i == onnx.TensorProto.FLOAT
    path = tmp_path / "half.onnx"
    onnx.save(half, str(path))
    frames = cv2.resize(cv2.imread(str(DAISY)), (64, 64))[None]
    a, b = _run(tiny_onnx, frames), _run(path, frames)
    assert np.abs(a[0] - b[0]).mean() <= 1e-2


def test_check_command_compares_two_models_on_real_frames(tiny_onnx, tmp_path):
    half = tmp_path / "half.onnx"
    onnx.save(convert_to_fp16(onnx.load(str(tiny_onnx))), str(half))
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "daisy.png"), cv2.imread(str(DAISY)))
    res = runner.invoke(export_app, ["check", str(half), str(tiny_onnx), "--frames", str(photos), "--json"])
    assert res.exit_code == 0, res.output
    assert '"in_focus_mean_abs"' in res.stdout


def test_imgsz_parsing():
    assert parse_imgsz("320") == (320, 320)
    assert parse_imgsz("320x480") == (320, 480)
    for bad in ("abc", "100", "320x"):
        with pytest.raises(ValueError):
            parse_imgsz(bad)


def _sidecar(**kw):
    base = dict(
        tensorrt_version="10.9.0",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        precision="fp16",
        input_shapes={"frames": [[1, 320, 320, 3]] * 3},
        onnx_sha256="0" * 64,
        build_seconds=12.0,
        built_at="2026-11-26T10:00:00+00:00",
    )
    base.update(kw)
    return EngineSidecar(**base)


def test_engine_profile_is_tuned_for_the_requested_size_and_covers_it():
    from export.tensorrt_build import EngineBuildConfig

    lo, opt, hi = EngineBuildConfig(imgsz=(256, 352)).profile()
    assert opt == (1, 256, 352, 3)
    assert all(a <= b <= c for a, b, c in zip(lo, opt, hi))
    assert EngineBuildConfig(imgsz=(704, 1280)).profile()[2] == (1, 704, 1280, 3)


def test_sidecar_round_trip_and_matching(tmp_path):
    engine = tmp_path / "m.engine"
    _sidecar().write(engine)
    sc = EngineSidecar.read(engine)
    assert mismatches(sc, "10.9.0", "NVIDIA H100 80GB HBM3", "9.0") == []
    problems = mismatches(sc, "11.0.0", "NVIDIA L4", "8.9")
    assert len(problems) == 3 and "TensorRT 10.9.0" in problems[0]
    with pytest.raises(FileNotFoundError, match="rebuild"):
        EngineSidecar.read(tmp_path / "other.engine")


def test_trt_build_without_tensorrt_is_a_clear_message(tiny_onnx, tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here; this test covers machines without it")
    except ImportError:
        pass
    res = runner.invoke(export_app, ["trt", str(tiny_onnx), "--out", str(tmp_path / "m.engine")])
    assert res.exit_code == 2
    assert "TensorRT is not installed" in res.output
    assert not (tmp_path / "m.engine").exists()


def test_export_cli_writes_onnx(tiny_checkpoint, tmp_path):
    res = runner.invoke(export_app, ["onnx", str(tiny_checkpoint), "--out", str(tmp_path / "m.onnx"), "--imgsz", "64x96"])
    assert res.exit_code == 0, res.output
    assert _run(tmp_path / "m.onnx", np.zeros((1, 64, 96, 3), np.uint8))[0].shape == (1, 1, 64, 96)
    bad = runner.invoke(export_app, ["onnx", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx")])
    assert bad.exit_code == 2 and "none.pt" in bad.output


def test_onnxruntime_and_torch_backends_agree_on_the_same_checkpoint(tiny_checkpoint, tiny_dynamic_onnx):
    from runtime.backends import open_backend
    from runtime.pipeline import FrameProcessor

    frame = cv2.GaussianBlur(np.random.default_rng(5).integers(0, 256, (60, 100, 3), dtype=np.uint8), (0, 0), 2)
    ort_result = FrameProcessor(open_backend(tiny_dynamic_onnx), imgsz=64).process(frame)
    torch_result = FrameProcessor(open_backend(tiny_checkpoint, "torch", threads=1), imgsz=64).process(frame)
    assert ort_result.in_focus_model.shape == torch_result.in_focus_model.shape == (64, 96)
    assert np.abs(ort_result.in_focus - torch_result.in_focus).max() <= 1e-4
    assert np.abs(ort_result.depth - torch_result.depth).max() <= 1e-4
