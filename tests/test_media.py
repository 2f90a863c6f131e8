"""Real-world media and failure modes: phone rotation, EXIF photos, variable frame rate, raw streams,
truncated files, awkward names, bad outputs, signals, wrong-shape models, inverted masks.

Every input is generated here, small. Each case checks the exit code, the one line naming the
file, and what is left on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from runtime.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _encode(path: Path, frames, times=None, rate=30, rotation=0, audio_s: float | None = None, options=None, fmt=None):
    """Write BGR frames with libx264 at `times` (seconds; default 1/rate apart), optional display
    rotation and a sine tone of `audio_s` seconds."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    tb = Fraction(1, 1000)
    times = times if times is not None else [i / rate for i in range(len(frames))]
    with av.open(str(path), "w", format=fmt, options=options or {}) as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if fmt != "h264":
            s.codec_context.time_base = tb
        if rotation:
            s.set_display_rotation(rotation)
        a = c.add_stream("aac", rate=44100) if audio_s else None
        if a is not None:
            a.layout = "mono"
        for img, t in zip(frames, times):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            if fmt != "h264":
                f.pts, f.time_base = int(round(t * 1000)), tb
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
        if a is not None:
            n = int(audio_s * 44100)
            tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)
            for start in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(tone[start : start + 1024][None], format="flt", layout="mono")
                af.sample_rate, af.pts, af.time_base = 44100, start, Fraction(1, 44100)
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


def _marked(h=48, w=64, n=6):
    """Frames with a white block in the top-left corner of the picture as meant to be seen."""
    out = []
    for i in range(n):
        img = np.full((h, w, 3), 40 + i, np.uint8)
        img[: h // 4, : w // 4] = 255
        out.append(img)
    return out


def _decoded(path: Path):
    with av.open(str(path)) as c:
        frames = [(f.to_ndarray(format="bgr24"), float(f.time), f.rotation) for f in c.decode(c.streams.video[0])]
    with av.open(str(path)) as c:
        audio = [float((p.pts + (p.duration or 0)) * p.time_base) for p in c.demux(c.streams.audio[0]) if p.pts is not None] if c.streams.audio else []
    return frames, (max(audio) if audio else None)


def _no_partials(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".partial" in p.name]


def _video(tmp_path, src, model, *extra):
    out = tmp_path / "out.mp4"
    res = runner.invoke(app, ["video", str(src), "--out", str(out), "--model", str(model), "--view", "side-by-side", "--no-hud", *extra])
    return res, out


@pytest.mark.parametrize("rotation,turns", [(90, 1), (-90, -1), (180, 2)])
def test_phone_rotation_is_applied_so_output_and_maps_are_upright(tmp_path, contract_onnx, rotation, turns):
    coded = [np.rot90(f, -turns).copy() for f in _marked()]  # stored sideways, shown upright by the matrix
    src = _encode(tmp_path / "phone.mp4", coded, rotation=rotation)
    res, out = _video(tmp_path, src, contract_onnx, "--imgsz", "32")
    assert res.exit_code == 0, res.output
    frames, _ = _decoded(out)
    assert len(frames) == 6
    image, _, out_rotation = frames[0]
    assert image.shape[:2] == (48, 64 * 3) and out_rotation == 0  # upright, no matrix left to apply
    panel = image[:, :64].astype(int)
    assert panel[:12, :16].mean() > 200 and panel[-12:, -16:].mean() < 120  # the marker where players show it
    if abs(rotation) == 90:
        assert "turned upright from a" in res.output


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_to_views_and_maps(tmp_path, contract_onnx, orientation):
    from PIL import Image

    upright = _marked(h=40, w=60, n=1)[0]
    stored = {3: np.rot90(upright, 2), 6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]
    photo = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored[..., ::-1])).save(photo, exif=exif, quality=95)
    res = runner.invoke(
        app,
        ["image", str(photo), "--out", str(tmp_path / "out"), "--save-maps", str(tmp_path / "maps"), "--model", str(contract_onnx), "--imgsz", "32", "--view", "side-by-side"],
    )
    assert res.exit_code == 0, res.output
    view = cv2.imread(str(tmp_path / "out" / "phone_side-by-side.png"))
    focus = cv2.imread(str(tmp_path / "maps" / "phone.png"), cv2.IMREAD_UNCHANGED)
    assert view.shape == (40, 180, 3) and focus.shape == (40, 60)
    assert view[:10, :15].mean() > 200 and view[-10:, 45:60].mean() < 120


def test_variable_frame_rate_keeps_each_frames_time_and_the_audio(tmp_path, contract_onnx):
    times = [0, 0.033, 0.066, 0.1, 2.1, 2.133, 2.166, 2.2, 2.3, 2.35]  # a 2 s hold after frame 4
    src = _encode(tmp_path / "vfr.mp4", _marked(n=len(times)), times=times, audio_s=2.4)
    res, out = _video(tmp_path, src, contract_onnx, "--imgsz", "32", "--json")
    assert res.exit_code == 0, res.output
    frames, audio_end = _decoded(out)
    assert [round(t, 3) for _, t, _ in frames] == times
    assert audio_end is not None and audio_end >= 2.3  # audio runs to the last frame, in sync


def test_raw_stream_uses_its_own_rate_and_says_so(tmp_path, contract_onnx):
    src = _encode(tmp_path / "clip.h264", _marked(n=12), rate=30, fmt="h264")
    res, out = _video(tmp_path, src, contract_onnx, "--imgsz", "32", "--json")
    assert res.exit_code == 0, res.output
    assert "no timestamps in the file; using the stream's own 30 fps" in res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["rate"] == 30
    frames, _ = _decoded(out)
    assert len(frames) == 12 and abs(frames[-1][1] - 11 / 30) < 0.002


def test_truncated_faststart_file_says_how_many_frames_were_readable(tmp_path, contract_onnx):
    full = _encode(tmp_path / "full.mp4", [np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8) for i in range(90)], options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.5)])
    res, out = _video(tmp_path, cut, contract_onnx, "--imgsz", "32", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["frames_expected"] == 90 and 0 < doc["frames"] < 90
    assert f"{doc['frames']} of the 90 frames the file lists were readable; it looks truncated" in res.output
    assert len(_decoded(out)[0]) == doc["frames"]


def test_photos_sharing_a_stem_get_distinct_outputs(tmp_path, contract_onnx):
    for suffix in (".jpg", ".png"):
        cv2.imwrite(str(tmp_path / f"shot{suffix}"), _marked(n=1)[0])
    res = runner.invoke(app, ["image", str(tmp_path / "shot.jpg"), str(tmp_path / "shot.png"), "--out", str(tmp_path / "out"), "--model", str(contract_onnx), "--imgsz", "32"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shot-jpg_overlay.png", "shot-png_overlay.png"]


@pytest.mark.parametrize("name", ["shot [draft].mp4", "a[/b]c.mp4", "größe ä.mp4", "x [bold]y[/bold].mp4"])
def test_names_with_markup_characters_spaces_and_non_ascii_print_as_they_are(tmp_path, contract_onnx, name):
    (tmp_path / name).parent.mkdir(exist_ok=True)  # "a[/b]c.mp4" is the file "b]c.mp4" in the folder "a["
    src = _encode(tmp_path / name, _marked(n=3))
    res, out = _video(tmp_path, src, contract_onnx, "--imgsz", "32")
    assert res.exit_code == 0, res.output
    missing = runner.invoke(app, ["video", str(tmp_path / (name + ".gone")), "--out", str(tmp_path / "o2.mp4"), "--model", str(contract_onnx)])
    assert missing.exit_code == 2 and f"{name}.gone: file not found" in missing.output
    bad_model = runner.invoke(app, ["video", str(src), "--out", str(tmp_path / "o3.mp4"), "--backend", "tensorrt", "--model", str(contract_onnx)])
    assert bad_model.exit_code == 2 and "pip install 'dbd-rt[trt]'" in bad_model.output  # the extra's name survives printing


@pytest.mark.parametrize(
    "target,reason",
    [("folder", "is a folder"), ("noext", "no suffix is not a video format"), ("anim.gif", ".gif is not a video format"), ("nofolder/o.mp4", "does not exist")],
)
def test_bad_video_outputs_are_refused_before_any_work(tmp_path, contract_onnx, clip_with_audio, target, reason):
    (tmp_path / "folder").mkdir()
    res = runner.invoke(app, ["video", str(clip_with_audio), "--out", str(tmp_path / target), "--model", str(contract_onnx)])
    assert res.exit_code == 2 and reason in res.output and len(res.output.strip().splitlines()) == 1
    assert _no_partials(tmp_path)


def test_unwritable_and_full_photo_outputs_are_one_line(tmp_path, contract_onnx, monkeypatch):
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), _marked(n=1)[0])
    parent_is_file = tmp_path / "file"
    parent_is_file.write_text("x")
    res = runner.invoke(app, ["image", str(photo), "--out", str(parent_is_file / "out"), "--model", str(contract_onnx)])
    assert res.exit_code == 2 and "does not exist" in res.output
    import runtime.photo_job

    monkeypatch.setattr(runtime.photo_job.cv2, "imwrite", lambda *a, **k: False)  # what a full disk gives
    res = runner.invoke(app, ["image", str(photo), "--out", str(tmp_path / "out"), "--model", str(contract_onnx)])
    assert res.exit_code == 2 and "p_overlay.png: cannot write" in res.output
    assert not list((tmp_path / "out").iterdir())  # no half-written file


def test_stale_partial_file_of_a_killed_run_is_cleaned_up(tmp_path, contract_onnx, clip_with_audio):
    out = tmp_path / "out.mp4"
    stale = tmp_path / ".out.partial-999999999.mp4"
    stale.write_bytes(b"left by kill -9")
    res = runner.invoke(app, ["video", str(clip_with_audio), "--out", str(out), "--model", str(contract_onnx), "--imgsz", "32"])
    assert res.exit_code == 0, res.output
    assert not stale.exists() and "left by an earlier run that was killed" in res.output and out.is_file()


def test_interrupt_before_the_first_frame_is_an_interruption_with_nothing_written(tmp_path, contract_onnx, clip_with_audio):
    from runtime.backends import open_backend
    from runtime.overlay import OverlayStyle
    from runtime.video_io import probe_video
    from runtime.video_job import process_video

    backend = open_backend(contract_onnx)

    def interrupted(frames):
        raise KeyboardInterrupt

    backend.submit = interrupted
    result = process_video(probe_video(clip_with_audio), tmp_path / "o.mp4", backend, OverlayStyle())
    assert result.interrupted == "Ctrl-C" and result.output is None and result.frames == 0
    assert not (tmp_path / "o.mp4").exists() and _no_partials(tmp_path)


def test_model_with_wrong_output_shapes_is_refused_on_the_first_frame(tmp_path, clip_with_audio, monkeypatch):
    """Also: the file is closed only once the decoder thread has left it (closing it under a
    decoding thread crashed the process now and then); a slow decoder keeps that window open."""
    import threading

    from runtime import video_io

    onnx = pytest.importorskip("onnx")
    decoding_at_close: list[bool] = []
    close, i420 = video_io.VideoReader.close, video_io.DecodedFrame.i420

    def slow_i420(self):
        time.sleep(0.05)
        return i420(self)

    def watched_close(self):
        decoding_at_close.append(any(t.name == "decode" and t.is_alive() for t in threading.enumerate()))
        close(self)

    monkeypatch.setattr(video_io.DecodedFrame, "i420", slow_i420)
    monkeypatch.setattr(video_io.VideoReader, "close", watched_close)
    from onnx import TensorProto as T
    from onnx import helper

    nodes = [
        helper.make_node("Cast", ["frames"], ["f"], to=T.FLOAT),
        helper.make_node("Transpose", ["f"], ["x"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("ReduceMean", ["p"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Sigmoid", ["m"], ["in_focus"]),
        helper.make_node("Identity", ["m"], ["depth"]),
    ]
    graph = helper.make_graph(
        nodes,
        "half",
        [helper.make_tensor_value_info("frames", T.UINT8, ["n", "h", "w", 3])],
        [helper.make_tensor_value_info(n, T.FLOAT, ["n", 1, "h2", "w2"]) for n in ("in_focus", "depth")],
    )
    model = tmp_path / "half.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    res, out = _video(tmp_path, clip_with_audio, model, "--imgsz", "32")
    assert res.exit_code == 2 and "half.onnx: output in_focus is (1, 1, 16, 32) for a (1, 32, 64, 3) input" in res.output
    assert not out.exists() and _no_partials(tmp_path)
    assert decoding_at_close and not any(decoding_at_close)


def test_inverted_masks_get_a_hint(tmp_path):
    from bench.cli import app as bench_app

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(3):
        img = np.zeros((48, 64, 3), np.uint8)
        img[:, :32] = np.random.default_rng(i).integers(0, 256, (48, 32, 3))  # sharp left half
        img[:, 32:] = cv2.GaussianBlur(img[:, :32], (0, 0), 6)
        cv2.imwrite(str(root / "images" / f"{i}.png"), img)
        mask = np.zeros((48, 64), np.uint8)
        mask[:, :32] = 255
        cv2.imwrite(str(root / "masks" / f"{i}.png"), mask)

    class Perfect:
        """The map a perfect model gives for white = in focus."""

    import bench.evaluate

    def predictor(backend, imgsz):
        return lambda image: np.concatenate([np.ones((image.shape[0], 32)), np.zeros((image.shape[0], 32))], axis=1).astype(np.float32)

    mp = pytest.MonkeyPatch()
    mp.setattr(bench.evaluate, "model_predictor", predictor)
    try:
        res = runner.invoke(bench_app, ["eval", "--data", str(root), "--mask-in-focus", "black"])
    finally:
        mp.undo()
    assert res.exit_code == 0, res.output
    assert "pass --mask-in-focus white (MAE would be 0.00)" in res.output


# ------------------------------------------------------------------ signals, in a real process


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """Twenty seconds of 320x240 with a tone: long enough to interrupt mid-way."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    base = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (240, 920, 3), dtype=np.uint8), (0, 0), 2)
    frames = (base[:, i : i + 320] for i in range(600))  # a slow pan
    return _encode(path, frames, audio_s=20.0)


def _start(tmp_path, src, model=None):
    out = tmp_path / "out.mp4"
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime",
            "video",
            str(src),
            "--out",
            str(out),
            *(["--model", str(model)] if model else []),
            "--imgsz",
            "64",
            "--threads",
            "1",
            "--frames-in-flight",
            "1",
            "--view",
            "side-by-side",
            "--preset",
            "medium",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, out


def _wait_for_frames(out: Path, proc, minimum_bytes: int = 2000, timeout: float = 60) -> None:
    """Until the temporary output holds some encoded frames."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        partial = [p for p in out.parent.iterdir() if p.name.startswith(".out.partial")]
        if partial and partial[0].stat().st_size >= minimum_bytes:
            return
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        time.sleep(0.05)
    raise AssertionError("no frames were written in time")


@pytest.mark.slow
@pytest.mark.parametrize("signals,code", [((signal.SIGINT,), 130), ((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130), ((signal.SIGTERM, signal.SIGINT), 143)])
def test_signals_finish_the_file_with_the_frames_done(tmp_path, long_clip, signals, code):
    proc, out = _start(tmp_path, long_clip)  # the embedded model: a real network's pace
    _wait_for_frames(out, proc)
    for i, sig in enumerate(signals):
        if i:
            time.sleep(0.02)  # a quick double press
        proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr
    assert f"interrupted ({'SIGTERM' if signals[0] == signal.SIGTERM else 'Ctrl-C'}): finished" in stderr
    doc = json.loads(stdout.strip().splitlines()[-1])
    frames, audio_end = _decoded(out)
    assert 0 < len(frames) == doc["frames"] < 600
    assert audio_end is not None and audio_end >= frames[-1][1]  # audio flushed to the last frame
    assert _no_partials(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("sig,code,delay", [(signal.SIGINT, 130, 0.15), (signal.SIGINT, 130, 0.4), (signal.SIGTERM, 143, 0.3), (signal.SIGTERM, 143, 0.5)])
def test_interrupt_during_start_up_is_one_line_with_its_code(tmp_path, long_clip, sig, code, delay):
    """While modules load (PyAV's extension modules turned an interrupt there into an ImportError,
    and Typer turned one into a silent 130, SIGTERM included) and while the command line is read."""
    proc, out = _start(tmp_path, long_clip)
    time.sleep(delay)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code and "Traceback" not in stderr, stderr[-3000:]
    assert f"interrupted ({'SIGTERM' if sig == signal.SIGTERM else 'Ctrl-C'})" in stderr, stderr[-3000:]
    assert len(stderr.strip().splitlines()) == 1 or out.exists(), stderr[-3000:]  # one line, unless frames got done
    assert _no_partials(tmp_path)


def test_broken_engine_sidecar_is_one_line(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    (tmp_path / "m.json").write_text("{not json")
    res = runner.invoke(app, ["info", "--model", str(engine)])
    assert res.exit_code == 2 and "m.json: unreadable engine sidecar" in res.output


def test_eval_plot_without_matplotlib_is_refused_before_scoring(tmp_path, monkeypatch):
    from bench.cli import app as bench_app

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    res = runner.invoke(bench_app, ["eval", "--data", str(tmp_path / "nowhere"), "--plot", str(tmp_path / "pr.png")])
    assert res.exit_code == 2 and "--plot needs matplotlib: pip install 'dbd-rt[bench]'" in res.output


def test_missing_camera_is_one_line_without_opencv_chatter(tmp_path, contract_onnx, capfd):
    from runtime.camera_job import CameraConfig, CameraError, open_camera

    with pytest.raises(CameraError, match="cannot open camera 57"):
        open_camera(CameraConfig(device="57"))
    assert capfd.readouterr().err == ""


def test_sigterm_stops_the_webcam_and_keeps_a_playable_recording(tmp_path, long_clip, contract_onnx):
    """`docker stop` on a live view that records: exit 143, the recording finished, no partials."""
    out = tmp_path / "out.mp4"
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    cmd = [sys.executable, "-m", "runtime", "webcam", "--device", str(long_clip), "--no-show", "--out", str(out), "--model", str(contract_onnx), "--imgsz", "64"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    _wait_for_frames(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr and "interrupted (SIGTERM)" in stderr
    frames, _ = _decoded(out)
    assert len(frames) > 0
    assert _no_partials(tmp_path)
