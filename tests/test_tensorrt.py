"""The TensorRT path, proven without a GPU: TensorRT's parser rules on our ONNX, and the whole engine
chain (dbd-export trt -> check -> dbd-rt video -> dbd-bench --compare) against the test doubles of
`tensorrt` and `pycuda` in tests/doubles (see its README for what they do and cannot show)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx")

from runtime.backends.tensorrt_rules import onnx_precision, tensorrt_problems  # noqa: E402
from runtime.model_info import DEFAULT_MODEL, DEFAULT_MODEL_FP16  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOUBLES = Path(__file__).parent / "doubles"
DAISY = Path(__file__).parent / "data" / "daisy.jpg"
runner = CliRunner()


def _forget_gpu_modules() -> None:
    for name in [m for m in sys.modules if m.split(".")[0] in ("tensorrt", "pycuda")]:
        del sys.modules[name]


@pytest.fixture(params=["10.13.0.35", "11.1.0.4"], ids=["trt10", "trt11"])
def gpu_doubles(request, monkeypatch, tmp_path):
    """tensorrt and pycuda doubles importable, TensorRT 10 and 11 flavours; caches under tmp."""
    _forget_gpu_modules()
    monkeypatch.setenv("DBD_DOUBLE_TRT_VERSION", request.param)
    monkeypatch.setenv("DBD_DOUBLE_GPUS", "NVIDIA H200:9.0")
    monkeypatch.setenv("DBD_RT_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(DOUBLES))
    yield request.param
    _forget_gpu_modules()


def _photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "daisy.png"), cv2.imread(str(DAISY)))
    return folder


def _export(tmp_path, model, *extra):
    from export.cli import app

    out = tmp_path / "m.engine"
    res = runner.invoke(app, ["trt", str(model), "--out", str(out), "--opt", "64x96", "--max-side", "256", *extra])
    assert res.exit_code == 0, res.output
    return out


# ------------------------------------------------------------------ static rules


def test_shipped_models_pass_tensorrt_rules_and_are_what_they_say():
    fp32, fp16 = onnx.load(str(DEFAULT_MODEL)), onnx.load(str(DEFAULT_MODEL_FP16))
    assert tensorrt_problems(fp32) == [] and tensorrt_problems(fp16) == []
    assert onnx_precision(fp32) == "fp32" and onnx_precision(fp16) == "fp16"
    for model in (fp32, fp16):
        assert model.graph.node[0].op_type == "Cast"  # the uint8 input is cast before anything else
        assert not [n for n in model.graph.node if n.op_type == "Shape"]


def _graph(nodes, inputs, outputs, inits=()):
    from onnx import helper

    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(inits)), opset_imports=[helper.make_opsetid("", 17)])


def test_rule_check_refuses_uint8_intermediates_fp16_shapes_and_fp16_reductions():
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    frames = helper.make_tensor_value_info("frames", T.UINT8, ["n", "h", "w", 3])
    outs = [helper.make_tensor_value_info(n, T.FLOAT, None) for n in ("in_focus", "depth")]
    # The old export: Transpose on the uint8 input, then Cast.
    transpose_first = _graph(
        [
            helper.make_node("Transpose", ["frames"], ["t"], perm=[0, 3, 1, 2]),
            helper.make_node("Cast", ["t"], ["in_focus"], to=T.FLOAT),
            helper.make_node("Identity", ["in_focus"], ["depth"]),
        ],
        [frames],
        outs,
    )
    assert any("UINT8 intermediate" in p for p in tensorrt_problems(transpose_first))
    # A resize whose scales are computed in FP16, and an FP16 mean over the map.
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float16), "s16")
    half_shapes = _graph(
        [
            helper.make_node("Cast", ["frames"], ["f"], to=T.FLOAT16),
            helper.make_node("Transpose", ["f"], ["x"], perm=[0, 3, 1, 2]),
            helper.make_node("Cast", ["s16"], ["s"], to=T.FLOAT),
            helper.make_node("Resize", ["x", "", "s"], ["r"], mode="linear"),
            helper.make_node("ReduceMean", ["r"], ["m"], axes=[2, 3], keepdims=1),
            helper.make_node("Cast", ["m"], ["in_focus"], to=T.FLOAT),
            helper.make_node("Identity", ["in_focus"], ["depth"]),
        ],
        [frames],
        outs,
        [scales],
    )
    problems = tensorrt_problems(half_shapes)
    assert any("shape input s is FP16 or computed from FP16" in p for p in problems)
    assert any("reduction in FP16" in p for p in problems)


def test_export_trt_refuses_a_graph_tensorrt_would_refuse_in_one_line(tmp_path):
    from onnx import TensorProto as T
    from onnx import helper

    from export.cli import app

    bad = tmp_path / "bad.onnx"
    frames = helper.make_tensor_value_info("frames", T.UINT8, [1, 32, 32, 3])
    onnx.save(
        _graph(
            [
                helper.make_node("Transpose", ["frames"], ["t"], perm=[0, 3, 1, 2]),
                helper.make_node("Cast", ["t"], ["in_focus"], to=T.FLOAT),
                helper.make_node("Identity", ["in_focus"], ["depth"]),
            ],
            [frames],
            [helper.make_tensor_value_info(n, T.FLOAT, None) for n in ("in_focus", "depth")],
        ),
        str(bad),
    )
    res = runner.invoke(app, ["trt", str(bad), "--out", str(tmp_path / "m.engine")])
    assert res.exit_code == 2
    assert "bad.onnx: TensorRT would refuse this graph" in res.output and "UINT8" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "m.engine").exists()


# ------------------------------------------------------------------ the doubles themselves


def test_doubles_refuse_what_the_real_libraries_refuse(gpu_doubles):
    import pycuda.driver as cuda
    import tensorrt as trt

    cuda.init()
    with pytest.raises(cuda.LogicError, match="invalid device context"):
        cuda.mem_alloc(16)  # no current context
    with pytest.raises(cuda.LogicError, match="cannot pop"):
        cuda.Context.pop()
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    try:
        buf = cuda.mem_alloc(16)
        stream = cuda.Stream()
        with pytest.raises(cuda.LogicError, match="not inside one live device allocation"):
            cuda.memcpy_htod_async(buf, np.zeros(32, np.uint8), stream)  # larger than the allocation
        with pytest.raises(ValueError, match="not contiguous"):
            cuda.memcpy_htod_async(buf, np.zeros((4, 8), np.uint8)[:, ::2], stream)
        host = np.zeros(16, np.uint8)
        cuda.memcpy_htod_async(buf, np.full(16, 7, np.uint8), stream)
        cuda.memcpy_dtoh_async(host, buf, stream)
        assert host.max() == 0  # nothing has run before the stream is synchronised
        stream.synchronize()
        assert host.min() == 7
        buf.free()
        with pytest.raises(cuda.LogicError, match="freed twice"):
            buf.free()
        if gpu_doubles.startswith("11"):
            assert not hasattr(trt.BuilderFlag, "FP16")  # weak typing is gone in TensorRT 11
        profile = trt.Builder(trt.Logger(trt.Logger.WARNING)).create_optimization_profile()
        with pytest.raises(RuntimeError, match="inconsistent"):
            profile.set_shape("frames", (1, 64, 64, 3), (1, 32, 32, 3), (1, 128, 128, 3))
    finally:
        cuda.Context.pop()


# ------------------------------------------------------------------ the engine chain


@pytest.mark.slow
def test_engine_chain_matches_onnxruntime(gpu_doubles, tmp_path, tiny_dynamic_onnx, clip_with_audio):
    from runtime.backends import open_backend
    from runtime.cli import app as rt_app
    from runtime.engine_sidecar import EngineSidecar
    from runtime.pipeline import FrameProcessor

    engine = _export(tmp_path, tiny_dynamic_onnx, "--timing-cache", str(tmp_path / "timing.cache"))
    sidecar = EngineSidecar.read(engine)
    assert sidecar.precision == "fp32" and sidecar.tensorrt_version == gpu_doubles
    assert sidecar.input_shapes["frames"] == [[1, 32, 32, 3], [1, 64, 96, 3], [1, 256, 256, 3]]
    assert (tmp_path / "timing.cache").is_file()

    from export.cli import app as export_app

    res = runner.invoke(export_app, ["check", str(engine), str(tiny_dynamic_onnx), "--frames", str(_photos(tmp_path)), "--imgsz", "64", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["in_focus_mean_abs"] <= 1e-4

    # Frames of two aspect ratios run at their own sizes through one engine, as with ONNX Runtime.
    trt_backend = open_backend(engine)
    ort_backend = open_backend(tiny_dynamic_onnx)
    assert trt_backend.input_size is None and trt_backend.in_flight == 2
    for shape in ((60, 100, 3), (100, 60, 3)):
        frame = cv2.GaussianBlur(np.random.default_rng(shape[0]).integers(0, 256, shape, dtype=np.uint8), (0, 0), 2)
        a, b = FrameProcessor(trt_backend, imgsz=64).process(frame), FrameProcessor(ort_backend, imgsz=64).process(frame)
        assert a.in_focus_model.shape == b.in_focus_model.shape
        assert np.abs(a.in_focus - b.in_focus).mean() <= 1e-4 and np.abs(a.depth - b.depth).max() <= 1e-4
    assert set(trt_backend.stage_ms()) == {"host_to_device", "compute", "device_to_host"}
    trt_backend.close()
    import pycuda.driver as cuda

    assert cuda._current_context() is None  # every push was popped

    out = tmp_path / "out.mp4"
    res = runner.invoke(rt_app, ["video", str(clip_with_audio), "--out", str(out), "--model", str(engine), "--imgsz", "32", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["frames"] == 12 and doc["backend"] == "tensorrt" and doc["input_size"] == "32x64"

    from bench.cli import app as bench_app

    res = runner.invoke(
        bench_app,
        ["fps", "--compare", "tensorrt,onnxruntime", "--model", str(tiny_dynamic_onnx), "--synthetic", "64x48", "--imgsz", "32", "--warmup", "1", "--iters", "3", "--json"],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["results"]
    assert [r["backend"] for r in rows] == ["tensorrt", "onnxruntime"]
    assert rows[0]["e2e_fps"] > 0 and "host_to_device" in rows[0]["stages_ms"]


@pytest.mark.slow
def test_fp16_engine_from_the_fp16_onnx(gpu_doubles, tmp_path, tiny_fp16_onnx, tiny_dynamic_onnx):
    from export.cli import app as export_app
    from runtime.engine_sidecar import EngineSidecar

    engine = _export(tmp_path, tiny_fp16_onnx)
    assert EngineSidecar.read(engine).precision == "fp16"
    res = runner.invoke(export_app, ["check", str(engine), str(tiny_dynamic_onnx), "--frames", str(_photos(tmp_path)), "--imgsz", "64", "--json"])
    assert res.exit_code == 0, res.output
    assert 0 < json.loads(res.stdout)["in_focus_mean_abs"] <= 1e-2


def test_engine_sizes_outside_the_profile_and_wrong_inputs_are_refused(gpu_doubles, tmp_path, tiny_dynamic_onnx):
    from runtime.backends import BackendError, infer, open_backend

    be = open_backend(_export(tmp_path, tiny_dynamic_onnx))
    with pytest.raises(BackendError, match="outside the engine's profile"):
        infer(be, np.zeros((1, 320, 64, 3), np.uint8))
    with pytest.raises(BackendError, match="expected uint8"):
        infer(be, np.zeros((1, 64, 64, 3), np.float32))
    be.close()


def test_engine_from_another_tensorrt_is_refused_with_a_rebuild_hint_then_rebuilt(gpu_doubles, tmp_path, tiny_dynamic_onnx, monkeypatch):
    from runtime.backends import BackendError, BackendOptions, infer, open_backend

    engine = _export(tmp_path, tiny_dynamic_onnx)
    _forget_gpu_modules()
    monkeypatch.setenv("DBD_DOUBLE_TRT_VERSION", "10.8.0.43" if gpu_doubles.startswith("11") else "11.1.0.4")
    with pytest.raises(BackendError, match="built with TensorRT .*pass --rebuild"):
        open_backend(engine)
    be = open_backend(engine, options=BackendOptions(rebuild=True))
    assert infer(be, np.zeros((1, 64, 96, 3), np.uint8)).in_focus.shape == (1, 1, 64, 96)
    be.close()


def test_timing_cache_of_another_gpu_is_used_not_overwritten(gpu_doubles, tmp_path, tiny_dynamic_onnx, monkeypatch):
    cache = tmp_path / "timing.cache"
    _export(tmp_path, tiny_dynamic_onnx, "--timing-cache", str(cache))
    before = cache.read_bytes()
    _forget_gpu_modules()
    monkeypatch.setenv("DBD_DOUBLE_GPUS", "NVIDIA L4:8.9")
    from export.cli import app

    res = runner.invoke(app, ["trt", str(tiny_dynamic_onnx), "--out", str(tmp_path / "l4.engine"), "--timing-cache", str(cache)])
    assert res.exit_code == 0, res.output
    assert "made for another GPU" in res.output and cache.read_bytes() == before


def test_gpu_index_is_checked(gpu_doubles, tmp_path, tiny_dynamic_onnx):
    from export.cli import app

    res = runner.invoke(app, ["trt", str(tiny_dynamic_onnx), "--out", str(tmp_path / "m.engine"), "--gpu", "3"])
    assert res.exit_code == 2 and "--gpu 3: this machine has 1 CUDA GPU" in res.output


def test_onnx_model_with_tensorrt_backend_builds_and_caches_an_engine(gpu_doubles, tmp_path, tiny_dynamic_onnx):
    from runtime.backends import infer, open_backend
    from runtime.cache import cache_dir

    be = open_backend(tiny_dynamic_onnx, "tensorrt")
    assert infer(be, np.zeros((1, 64, 64, 3), np.uint8)).depth.shape == (1, 1, 64, 64)
    be.close()
    engines = list(cache_dir("engines").glob("*.engine"))
    assert len(engines) == 1 and "nvidia-h200" in engines[0].name
    open_backend(tiny_dynamic_onnx, "tensorrt").close()  # reused, not rebuilt
    assert list(cache_dir("engines").glob("*.engine")) == engines


def test_without_tensorrt_the_build_says_what_to_install(tmp_path, tiny_onnx):
    pytest.importorskip("torch")  # any machine: only needs tensorrt absent
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here; this test covers machines without it")
    except ImportError:
        pass
    from export.cli import app

    res = runner.invoke(app, ["trt", str(tiny_onnx), "--out", str(tmp_path / "m.engine")])
    assert res.exit_code == 2 and "TensorRT is not installed: pip install 'dbd-rt[trt]'" in res.output
    assert not (tmp_path / "m.engine").exists()


NO_TORCH_CHAIN = textwrap.dedent(
    """
    import sys
    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "timm", "torchvision", "modelopt"):
                raise ImportError(f"{name} is unavailable in this test")
            return None
    sys.meta_path.insert(0, NoTorch())
    sys.path.insert(0, sys.argv[1])
    from export.cli import app as export_app
    from runtime.cli import app as rt_app
    def run(app, args):
        try:
            app(args, standalone_mode=False)
        except SystemExit as exc:
            assert not exc.code, (args, exc.code)
    out = sys.argv[2]
    run(export_app, ["trt", "--out", out + "/default.engine", "--opt", "64x96", "--max-side", "256"])
    run(export_app, ["check", out + "/default.engine", sys.argv[3], "--count", "2", "--imgsz", "64"])
    run(rt_app, ["video", sys.argv[4], "--out", out + "/v.mp4", "--model", out + "/default.engine", "--imgsz", "32"])
    assert "torch" not in sys.modules
    print("chain ok")
    """
)


@pytest.mark.slow
def test_trt_extra_alone_builds_checks_and_runs_the_shipped_fp16_model_without_torch(tmp_path, clip_with_audio):
    env = {"PATH": "/usr/bin:/bin", "DBD_RT_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path), "DBD_DOUBLE_TRT_VERSION": "10.13.0.35"}
    out = subprocess.run(
        [sys.executable, "-c", NO_TORCH_CHAIN, str(DOUBLES), str(tmp_path), str(DEFAULT_MODEL), str(clip_with_audio)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "chain ok" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
    assert "fp16, TensorRT 10.13.0.35, NVIDIA H200" in out.stderr
