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
from runtime.engine_sidecar import EngineSidecar, mismatches  # noqa: E402
from runtime.model_info import parse_hw  # noqa: E402
from trainer.checkpoint import load_model  # noqa: E402
from trainer.model import DeployableNet  # noqa: E402

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


def test_fp16_conversion_keeps_io_types_reductions_and_sigmoid_fp32_and_stays_close(tiny_fp16_onnx, tiny_dynamic_onnx):
    from export.precision import KEEP_FP32_OPS, emulate_fp16
    from runtime.backends.tensorrt_rules import onnx_precision, tensorrt_problems

    half = onnx.load(str(tiny_fp16_onnx))
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [o.type.tensor_type.elem_type for o in half.graph.output] == [onnx.TensorProto.FLOAT] * 2
    assert onnx_precision(half) == "fp16" and tensorrt_problems(half) == []
    typed = onnx.shape_inference.infer_shapes(half)
    types = {v.name: v.type.tensor_type.elem_type for v in [*typed.graph.value_info, *typed.graph.output]}
    kept = [n for n in typed.graph.node if n.op_type in KEEP_FP32_OPS]
    assert kept and all(types[n.output[0]] == onnx.TensorProto.FLOAT for n in kept)
    frames = cv2.resize(cv2.imread(str(DAISY)), (96, 64))[None]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    emulated = ort.InferenceSession(emulate_fp16(half).SerializeToString(), opts, providers=["CPUExecutionProvider"])
    a, b = _run(tiny_dynamic_onnx, frames), emulated.run(None, {"frames": frames})
    assert 0 < np.abs(a[0] - b[0]).mean() <= 1e-2  # rounded (not identical) and close


def test_emulation_rounds_every_fp16_tensor():
    from onnx import TensorProto, helper

    from export.precision import emulate_fp16

    # x (fp32) -> Cast(fp16) -> Add(one third, fp16) -> Cast(fp32): the emulation must round both
    # the cast and the sum through FP16.
    third = onnx.numpy_helper.from_array(np.array([1 / 3], np.float16), "third")
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
            helper.make_node("Add", ["h", "third"], ["s"]),
            helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [third],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    got = ort.InferenceSession(emulate_fp16(model).SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, {"x": np.array([1000.1], np.float32)})[0]
    want = np.float16(np.float16(1000.1) + np.float16(1 / 3))
    assert got.dtype == np.float32 and got[0] == np.float32(want) and got[0] != np.float32(1000.1 + 1 / 3)


def test_check_command_compares_two_models_on_real_frames(tiny_fp16_onnx, tiny_dynamic_onnx, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "daisy.png"), cv2.imread(str(DAISY)))
    res = runner.invoke(export_app, ["check", str(tiny_fp16_onnx), str(tiny_dynamic_onnx), "--frames", str(photos), "--imgsz", "64", "--json"])
    assert res.exit_code == 0, res.output
    assert '"in_focus_mean_abs"' in res.stdout


def test_size_parsing():
    assert parse_hw("320") == (320, 320)
    assert parse_hw("320x480") == (320, 480)
    for bad in ("abc", "100", "320x", "16x32"):
        with pytest.raises(ValueError):
            parse_hw(bad)


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
    from runtime.backends.tensorrt_build import EngineBuildConfig

    lo, opt, hi = EngineBuildConfig(opt=(256, 352)).profile()
    assert opt == (1, 256, 352, 3) and lo == (1, 32, 32, 3)
    assert all(a <= b <= c for a, b, c in zip(lo, opt, hi))
    assert EngineBuildConfig(opt=(704, 1472), max_side=1280).profile()[2] == (1, 1472, 1472, 3)


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
    res = runner.invoke(export_app, ["onnx", str(tiny_checkpoint), "--out", str(tmp_path / "m.onnx"), "--size", "64x96"])
    assert res.exit_code == 0, res.output
    assert _run(tmp_path / "m.onnx", np.zeros((1, 64, 96, 3), np.uint8))[0].shape == (1, 1, 64, 96)
    bad = runner.invoke(export_app, ["onnx", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx")])
    assert bad.exit_code == 2 and "none.pt" in bad.output


def test_onnxruntime_and_torch_backends_agree_on_the_same_checkpoint(tiny_checkpoint, tiny_dynamic_onnx):
    from runtime.backends import BackendOptions, open_backend
    from runtime.pipeline import FrameProcessor

    frame = cv2.GaussianBlur(np.random.default_rng(5).integers(0, 256, (60, 100, 3), dtype=np.uint8), (0, 0), 2)
    ort_result = FrameProcessor(open_backend(tiny_dynamic_onnx), imgsz=64).process(frame)
    torch_result = FrameProcessor(open_backend(tiny_checkpoint, "torch", BackendOptions(threads=1)), imgsz=64).process(frame)
    assert ort_result.in_focus_model.shape == torch_result.in_focus_model.shape == (64, 96)
    assert np.abs(ort_result.in_focus - torch_result.in_focus).max() <= 1e-4
    assert np.abs(ort_result.depth - torch_result.depth).max() <= 1e-4
