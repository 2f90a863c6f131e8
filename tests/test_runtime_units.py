"""Overlays, frame handling, latest-frame capture, backend choice."""

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.backends import BackendError, BackendOptions, choose_backend, infer, open_backend
from runtime.capture import LatestFrameCapture
from runtime.overlay import OverlayStyle, View, adaptive_mask, colorize, draw_hud, mask_view, overlay_view, render, to_bgr, upsample
from runtime.pipeline import FrameProcessor, FrameResult, Renderer, StageTimes, model_size_for


def test_colorize_maps_extremes_to_the_colour_map_ends():
    img = colorize(np.array([[0.0, 1.0]]), "gray")
    assert img.dtype == np.uint8 and img.shape == (1, 2, 3)
    assert img[0, 0].tolist() == [0, 0, 0] and img[0, 1].tolist() == [255, 255, 255]
    with pytest.raises(ValueError, match="unknown colour map"):
        colorize(np.zeros((2, 2)), "rainbow-unicorn")


def test_overlay_leaves_out_of_focus_pixels_and_tints_in_focus_ones():
    frame = np.full((4, 4, 3), 100, np.uint8)
    focus = np.zeros((4, 4), np.float32)
    focus[:2] = 1.0
    out = overlay_view(frame, focus, alpha=0.5, cmap="gray")
    assert np.array_equal(out[2:], frame[2:])
    assert np.all(out[:2] == 177)  # halfway between 100 and white (255)
    assert np.array_equal(overlay_view(frame, focus, alpha=0.0, cmap="gray"), frame)


@pytest.mark.parametrize("view", list(View))
def test_each_view_is_panels_frames_wide(view):
    frame = np.zeros((10, 12, 3), np.uint8)
    f, d = np.random.default_rng(0).random((2, 10, 12)).astype(np.float32)
    out = render(frame, f, d, OverlayStyle(view=view))
    assert out.shape == (10, 12 * view.panels, 3)


def test_adaptive_mask_uses_one_and_a_half_times_the_mean():
    m = np.array([[0.0, 0.1, 0.2, 0.9]])  # mean 0.3 -> threshold 0.45
    assert adaptive_mask(m).tolist() == [[False, False, False, True]]


def test_mask_view_dims_outside_keeps_inside_and_outlines_the_region():
    frame = np.full((120, 160, 3), 200, np.uint8)
    focus = np.zeros((120, 160), np.float32)
    focus[30:90, 40:120] = 1.0
    out = mask_view(frame, focus)
    assert np.array_equal(out[45:75, 60:100], frame[45:75, 60:100])
    assert np.abs(out[:10, :10].astype(int) - 90).max() <= 1  # 200 x 0.45
    yellow = (out[..., 0] < 60) & (out[..., 1] > 200) & (out[..., 2] > 200)
    assert yellow[28:33, 40:120].any() and not yellow[45:75, 60:100].any()


def test_views_cycle_and_hud_draws():
    assert View.overlay.next() is View.side_by_side and View.mask.next() is View.peaking and View.focus_plane.next() is View.overlay
    img = np.zeros((60, 200, 3), np.uint8)
    draw_hud(img, 31.0, 12.0)
    assert img.any()


@pytest.mark.parametrize("shape", [(21, 33), (21, 33, 1), (21, 33, 4), (21, 33, 3)])
def test_grey_four_channel_and_odd_frames_work(contract_onnx, shape):
    frame = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    assert to_bgr(frame).shape == (21, 33, 3)
    result = FrameProcessor(open_backend(contract_onnx)).process(frame)
    assert result.in_focus.shape == result.depth.shape == (21, 33)
    assert 0 <= result.in_focus.min() and result.in_focus.max() <= 1


def test_dynamic_models_get_a_stride_aligned_size():
    class Dynamic:
        input_size = None

    assert model_size_for((480, 640), Dynamic(), 320) == (320, 416)
    assert model_size_for((33, 47), Dynamic(), 32) == (32, 32 * round(47 * 32 / 33 / 32))


def test_dynamic_graph_has_no_shape_arithmetic_and_runs_every_size_in_one_session(tiny_dynamic_onnx):
    import onnx

    # timm's run-time "same" padding and size-driven resizes are exported as constants, so the
    # graph's only dynamic values are the input dims: nothing for ONNX Runtime or TensorRT to fold.
    assert not [n for n in onnx.load(str(tiny_dynamic_onnx)).graph.node if n.op_type == "Shape"]
    be = open_backend(tiny_dynamic_onnx, "auto", BackendOptions(threads=1))
    assert be.input_size is None
    for h, w in ((64, 96), (96, 64), (32, 160)):
        focus, depth = infer(be, np.random.default_rng(h).integers(0, 256, (1, h, w, 3), dtype=np.uint8))
        assert focus.shape == depth.shape == (1, 1, h, w)


def test_backend_choice_follows_the_file_kind(tmp_path):
    assert choose_backend(Path("m.engine")) == "tensorrt"
    assert choose_backend(Path("m.onnx")) == "onnxruntime"
    assert choose_backend(Path("m.pt")) == "torch"
    assert choose_backend(Path("m.onnx"), "tensorrt") == "tensorrt"  # built into a cached engine
    with pytest.raises(BackendError, match="reads .engine/.onnx"):
        choose_backend(Path("m.pt"), "tensorrt")
    with pytest.raises(BackendError, match="unknown backend"):
        choose_backend(Path("m.onnx"), "tpu")


def test_onnxruntime_and_torch_backends_agree(tiny_checkpoint, tiny_onnx):
    pytest.importorskip("torch")
    frames = np.random.default_rng(2).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    ort_f, ort_d = infer(open_backend(tiny_onnx), frames)
    pt_f, pt_d = infer(open_backend(tiny_checkpoint, "torch"), frames)
    assert np.abs(ort_f - pt_f).max() <= 1e-4
    assert np.abs(ort_d - pt_d).max() <= 1e-3


class FakeCamera:
    """Delivers numbered frames as fast as asked; `limit` frames, then read() fails."""

    def __init__(self, limit: int = 10_000, delay: float = 0.001) -> None:
        self.n, self.limit, self.delay = 0, limit, delay
        self.released = threading.Event()

    def read(self):
        time.sleep(self.delay)
        if self.n >= self.limit:
            return False, None
        self.n += 1
        return True, np.full((2, 2, 3), self.n % 256, np.uint8)

    def release(self):
        self.released.set()


def test_capture_hands_out_only_the_newest_frame():
    cam = FakeCamera()
    cap = LatestFrameCapture(cam).start()
    first = cap.latest()
    time.sleep(0.1)  # a slow consumer: many frames arrive meanwhile
    second = cap.latest()
    seen_at = cam.n
    cap.stop()
    assert first is not None and second is not None
    assert int(second[0, 0, 0]) >= (seen_at - 3) % 256  # the newest, not the next in line
    assert cap.dropped > 10
    assert cam.released.is_set()


def test_capture_never_hands_out_the_same_frame_twice_and_reports_a_dead_camera():
    cam = FakeCamera(limit=1)
    cap = LatestFrameCapture(cam, max_failures=3).start()
    assert cap.latest() is not None
    assert cap.latest(timeout=1.0) is None
    assert cap.failed
    cap.stop()


def test_onnxruntime_frames_in_flight_keep_order_and_values(contract_onnx):
    one = open_backend(contract_onnx, "onnxruntime", BackendOptions(threads=2, frames_in_flight=1))
    two = open_backend(contract_onnx, "onnxruntime", BackendOptions(threads=2, frames_in_flight=2))
    assert (one.in_flight, one.threads) == (1, 2) and "2 threads" in one.describe()
    assert (two.in_flight, two.threads) == (2, 1) and "2 frames in flight x 1 threads" in two.describe()
    rng = np.random.default_rng(3)
    batches = [rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8) for _ in range(5)]
    for b in batches:
        two.submit(b)
    got = [two.collect() for _ in batches]
    for b, (focus, depth) in zip(batches, got):
        want_focus, want_depth = infer(one, b)
        np.testing.assert_allclose(focus, want_focus, atol=1e-5)
        np.testing.assert_allclose(depth, want_depth, atol=1e-5)
    two.close()
    one.close()


def test_auto_frames_in_flight_only_splits_cpu_threads():
    from runtime.backends.onnxruntime_backend import auto_frames_in_flight

    assert auto_frames_in_flight("CPUExecutionProvider", 2) == 2
    assert auto_frames_in_flight("CPUExecutionProvider", 1) == 1
    assert auto_frames_in_flight("CUDAExecutionProvider", 16) == 1


def test_webcam_records_every_shown_frame_with_two_in_flight(tmp_path, contract_onnx, monkeypatch):
    from typer.testing import CliRunner

    import runtime.camera_job
    from runtime.cli import app
    from runtime.video_io import probe_video

    class Camera(FakeCamera):
        def __init__(self, source):
            super().__init__()

        def isOpened(self):
            return True

        def set(self, prop, value):
            return True

        def get(self, prop):
            return 10.0

        def read(self):
            ok, _ = super().read()
            time.sleep(0.005)
            return ok, np.full((48, 64, 3), self.n % 256, np.uint8)

    monkeypatch.setattr(runtime.camera_job.cv2, "VideoCapture", Camera)
    out = tmp_path / "rec.mp4"
    res = CliRunner().invoke(
        app, ["webcam", "--no-show", "--max-frames", "6", "--frames-in-flight", "2", "--threads", "2", "--view", "side-by-side", "--out", str(out), "--model", str(contract_onnx)]
    )
    assert res.exit_code == 0, res.output
    assert "2 frames in flight" in res.output
    probe = probe_video(out)
    assert (probe.width, probe.height) == (192, 48)
    assert probe.frames == 6


def test_frame_processor_keeps_order_with_two_in_flight_and_times_latency():
    class SlowBackend:
        name, device, precision, input_size, in_flight = "fake", "cpu", "fp32", (8, 8), 2

        def __init__(self):
            self.queue = []

        def submit(self, frames):
            self.queue.append(float(frames.mean()))

        def collect(self):
            time.sleep(0.02)
            v = self.queue.pop(0) / 255
            return np.full((1, 1, 8, 8), v, np.float32), np.full((1, 1, 8, 8), v, np.float32)

        def close(self):
            pass

    proc = FrameProcessor(SlowBackend())
    frames = [np.full((16, 16, 3), v, np.uint8) for v in (10, 20, 30)]
    got = [proc.push(f) for f in frames] + [proc.drain()]
    assert [len(g) for g in got] == [0, 1, 1, 1]
    results = [r for g in got for r in g]
    assert [round(float(r.in_focus_model.mean()) * 255) for r in results] == [10, 20, 30]
    assert results[0].in_focus.shape == (16, 16)
    assert all(r.latency_ms >= 20 for r in results)


@pytest.mark.parametrize("view,uses_frame_size_map", [(View.overlay, True), (View.mask, True), (View.side_by_side, False), (View.maps, False)])
def test_renderer_makes_the_frame_size_map_only_for_views_drawn_at_frame_size(view, uses_frame_size_map):
    frame = np.full((48, 64, 3), 90, np.uint8)
    focus = np.zeros((24, 32), np.float32)
    focus[:, :16] = 1.0
    result = FrameResult(frame, focus, np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32))
    image = Renderer(OverlayStyle(view=view, hud=False), StageTimes())(result)
    assert image.shape == (48, 64 * view.panels, 3)
    # cached_property keeps the native-size map in the instance once made: reused by --save-maps.
    assert ("in_focus" in vars(result)) is uses_frame_size_map


def test_onnxruntime_gpu_providers_get_engine_cache_fp16_profile_and_device(monkeypatch, tmp_path):
    import runtime.backends.onnxruntime_backend as ob

    monkeypatch.setenv("DBD_RT_CACHE", str(tmp_path))
    monkeypatch.setattr(ob.ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    trt, cuda, cpu = ob.provider_list("auto", gpu=1)
    name, opts = trt
    assert name == "TensorrtExecutionProvider" and opts["device_id"] == 1
    assert opts["trt_fp16_enable"] and opts["trt_engine_cache_enable"] and opts["trt_timing_cache_enable"]
    assert opts["trt_engine_cache_path"] == str(tmp_path / "ort-tensorrt")
    assert opts["trt_profile_min_shapes"] == "frames:1x32x32x3" and opts["trt_profile_max_shapes"] == "frames:1x1280x1280x3"
    assert cuda == ("CUDAExecutionProvider", {"device_id": 1}) and cpu == "CPUExecutionProvider"
    with pytest.raises(BackendError, match="not available here"):
        ob.provider_list("DmlExecutionProvider", 0)


def test_provider_fallback_notices_never_reach_stdout(monkeypatch, tmp_path, contract_onnx, clip_with_audio):
    import json

    from typer.testing import CliRunner

    import runtime.backends.onnxruntime_backend as ob
    from runtime.cli import app

    real = ob.ort.InferenceSession

    def noisy(*args, **kwargs):
        print("EP Error ... Falling back to ['CPUExecutionProvider'] and retrying.")  # what ORT does
        return real(*args, **kwargs)

    monkeypatch.setattr(ob.ort, "InferenceSession", noisy)
    res = CliRunner().invoke(app, ["video", str(clip_with_audio), "--out", str(tmp_path / "o.mp4"), "--model", str(contract_onnx), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["frames"] == 12  # stdout holds the JSON document alone


@pytest.mark.parametrize("view", list(View))
@pytest.mark.parametrize("size", [(48, 64), (30, 42)])
def test_i420_drawing_shows_what_the_bgr_views_show(view, size):
    """The video path draws on I420 planes. What reaches the encoder must match what the BGR views
    gave it (they were converted to I420 there), within rounding; panels may be scaled to fit
    3840 px (not at these sizes)."""
    from runtime import overlay_i420

    h, w = size
    rng = np.random.default_rng(7)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
    focus = cv2.resize(rng.random((6, 8)).astype(np.float32), (w // 2, h // 2))
    depth = cv2.resize(rng.random((6, 8)).astype(np.float32), (w // 2, h // 2))
    style = OverlayStyle(view=view)
    bgr_view = render(frame, upsample(focus, (h, w)) if view.frame_sized else focus, depth, style)
    want = overlay_i420.to_bgr(overlay_i420.from_bgr(bgr_view))
    got = overlay_i420.to_bgr(overlay_i420.render(overlay_i420.from_bgr(frame), focus, depth, style))
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.mean() <= 4.0 and np.percentile(diff, 99) <= 40


def test_wide_views_are_scaled_to_stay_playable():
    from runtime import overlay_i420

    assert overlay_i420.view_size(View.side_by_side, (1080, 1920)) == (720, 3840)
    assert overlay_i420.view_size(View.maps, (2160, 3840)) == (1080, 3840)
    assert overlay_i420.view_size(View.side_by_side, (480, 640)) == (480, 1920)
    assert overlay_i420.view_size(View.overlay, (2160, 3840)) == (2160, 3840)


def test_i420_hud_draws_in_the_corner_only():
    from runtime import overlay_i420

    image = overlay_i420.from_bgr(np.full((120, 200, 3), 128, np.uint8))
    before = image.copy()
    overlay_i420.draw_hud_i420(image, 30.0, 12.0, "overlay")
    y_now, y_before = overlay_i420.planes(image)[0], overlay_i420.planes(before)[0]
    assert (y_now[:10, :60] != y_before[:10, :60]).any() and np.array_equal(y_now[60:], y_before[60:])


# ------------------------------------------------------------------ console-script start (launch)

_CLI = """
import os, signal
import typer

app = typer.Typer()


@app.command()
def job(what: str) -> None:
    if what == "term":
        os.kill(os.getpid(), signal.SIGTERM)  # raised here, where a job would finish its file
    elif what == "broken-import":
        os.kill(os.getpid(), signal.SIGINT)
        raise ImportError("initialization failed")  # what an interrupted extension module leaves
    elif what == "finished":
        print("finished the file")
        raise typer.Exit(143)
    raise KeyboardInterrupt


@app.command()
def other() -> None:
    pass
"""


@pytest.mark.parametrize(
    "argv,code,line",
    [
        (["job", "term"], 143, "interrupted (SIGTERM)"),
        (["job", "ctrl-c"], 130, "interrupted (Ctrl-C)"),
        (["job", "broken-import"], 130, "interrupted (Ctrl-C)"),
        (["job", "finished"], 143, ""),
    ],
)
def test_launch_reports_each_interrupt_once_with_its_code(tmp_path, monkeypatch, capsys, argv, code, line):
    """Typer alone turns an interrupt that leaves a command into a silent exit 130, SIGTERM too."""
    import signal
    import sys

    from runtime.interrupts import launch

    (tmp_path / "fake_cli.py").write_text(_CLI)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["fake", *argv])
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as exited:
            launch("fake_cli", "fake")
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert exited.value.code == code
    err = capsys.readouterr().err
    assert err.strip() == line
