"""dbd-rt video end to end, and its handling of bad input."""

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from runtime.cli import app

runner = CliRunner()


def _streams(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        return {
            "frames": frames,
            "rate": float(v.average_rate),
            "size": (v.codec_context.width, v.codec_context.height),
            "codec": v.codec_context.name,
            "audio": [a.codec_context.name for a in c.streams.audio],
        }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("view,panels", [("side-by-side", 3), ("overlay", 1), ("maps", 2)])
def test_video_keeps_every_frame_rate_audio_and_writes_h264(tmp_path, contract_onnx, clip_with_audio, view, panels):
    out = tmp_path / "out.mp4"
    res = runner.invoke(app, ["video", str(clip_with_audio), "--out", str(out), "--model", str(contract_onnx), "--view", view])
    assert res.exit_code == 0, res.output
    src, got = _streams(clip_with_audio), _streams(out)
    assert got["frames"] == src["frames"] == 12
    assert got["rate"] == src["rate"] == 25
    assert got["size"] == (96 * panels, 64)
    assert got["codec"] == "h264"
    assert got["audio"] == ["aac"]
    assert not list(tmp_path.glob(".*partial*"))


def test_video_with_default_model_prints_summary(tmp_path, clip_with_audio):
    out = tmp_path / "default.mp4"
    res = runner.invoke(app, ["video", str(clip_with_audio), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert "fps end to end" in res.output
    assert _streams(out)["frames"] == 12


@pytest.mark.parametrize("dynamic,size", [(True, "32x64"), (False, "64x64")])
def test_video_imgsz_sets_a_dynamic_models_input_only(tmp_path, tiny_onnx, tiny_dynamic_onnx, clip_with_audio, dynamic, size):
    import json

    out = tmp_path / "small.mp4"
    model = tiny_dynamic_onnx if dynamic else tiny_onnx
    res = runner.invoke(app, ["video", str(clip_with_audio), "--out", str(out), "--model", str(model), "--imgsz", "32", "--view", "overlay", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["input_size"] == size
    assert _streams(out)["size"] == (96, 64)


def _assert_refused(res, *fragments):
    assert res.exit_code == 2, res.output
    for f in fragments:
        assert f in res.output


def test_missing_input(tmp_path, contract_onnx):
    res = runner.invoke(app, ["video", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o.mp4"), "--model", str(contract_onnx)])
    _assert_refused(res, "nope.mp4", "not found")
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(
    "content,reason",
    [(b"hello, this is not a video\n" * 20, "not a readable video"), (b"", "not a readable video")],
)
def test_non_video_and_empty_input(tmp_path, contract_onnx, content, reason):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    out = tmp_path / "o.mp4"
    res = runner.invoke(app, ["video", str(bad), "--out", str(out), "--model", str(contract_onnx)])
    _assert_refused(res, "bad.mp4", reason)
    assert not out.exists()
    assert bad.read_bytes() == content


def test_corrupt_truncated_input(tmp_path, contract_onnx, clip_with_audio):
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(clip_with_audio.read_bytes()[:600])
    out = tmp_path / "o.mp4"
    res = runner.invoke(app, ["video", str(bad), "--out", str(out), "--model", str(contract_onnx)])
    _assert_refused(res, "cut.mp4")
    assert not out.exists()


def test_audio_only_file_has_no_video_stream(tmp_path, contract_onnx):
    import numpy as np

    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        f.sample_rate = 44100
        f.pts = 0
        for p in s.encode(f):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    res = runner.invoke(app, ["video", str(path), "--out", str(tmp_path / "o.mp4"), "--model", str(contract_onnx)])
    _assert_refused(res, "tone.m4a", "no video stream")


def test_output_equal_to_input_is_refused_and_input_untouched(tmp_path, contract_onnx, clip_with_audio):
    copy = tmp_path / "in.mp4"
    copy.write_bytes(clip_with_audio.read_bytes())
    before = _sha(copy)
    res = runner.invoke(app, ["video", str(copy), "--out", str(tmp_path / "." / "in.mp4"), "--model", str(contract_onnx)])
    _assert_refused(res, "overwrite the input")
    assert _sha(copy) == before


def test_output_in_missing_folder_is_refused(tmp_path, contract_onnx, clip_with_audio):
    res = runner.invoke(app, ["video", str(clip_with_audio), "--out", str(tmp_path / "no" / "o.mp4"), "--model", str(contract_onnx)])
    _assert_refused(res, "does not exist")


def test_bad_model_file(tmp_path, clip_with_audio):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"garbage")
    res = runner.invoke(app, ["video", str(clip_with_audio), "--out", str(tmp_path / "o.mp4"), "--model", str(model)])
    _assert_refused(res, "m.onnx")


def test_ctrl_c_finishes_the_file_with_frames_done(tmp_path, contract_onnx, clip_with_audio):
    from runtime.backends import open_backend
    from runtime.overlay import OverlayStyle
    from runtime.video_io import probe_video
    from runtime.video_job import process_video

    def interrupt_after_five(frames: int, fps: float) -> None:
        if frames >= 5:
            raise KeyboardInterrupt

    out = tmp_path / "partial.mp4"
    result = process_video(probe_video(clip_with_audio), out, open_backend(contract_onnx), OverlayStyle(), on_frame=interrupt_after_five)
    assert result.interrupted
    assert 5 <= result.frames < 12
    got = _streams(out)
    assert got["frames"] == result.frames
    assert got["audio"] == ["aac"]


def test_sequential_stage_times_add_up_to_the_total(tmp_path, contract_onnx, clip_with_audio):
    from runtime.backends import open_backend
    from runtime.overlay import OverlayStyle, View
    from runtime.video_io import probe_video
    from runtime.video_job import process_video

    r = process_video(probe_video(clip_with_audio), tmp_path / "s.mp4", open_backend(contract_onnx), OverlayStyle(view=View.side_by_side), threaded=False)
    per_frame = r.seconds * 1000 / r.frames
    stages = sum(r.stages_ms.values())
    assert set(r.stages_ms) == {"decode", "preprocess", "infer", "postprocess", "overlay", "encode"}
    assert 0.75 * per_frame <= stages <= 1.05 * per_frame


def test_frame_rate_fallback_rule():
    from fractions import Fraction

    from runtime.video_io import _valid_rate

    assert _valid_rate(Fraction(30000, 1001))
    assert not _valid_rate(Fraction(0))
    assert not _valid_rate(None)


def test_odd_sized_output_is_padded_to_even(tmp_path):
    import numpy as np

    from runtime.video_io import VideoWriter, probe_video

    w = VideoWriter(tmp_path / "odd.mp4", 33, 21, time_base=Fraction(1, 10), rate=Fraction(10))
    for i in range(3):
        w.write(np.full((21, 33, 3), 128, np.uint8), i)
    w.finish()
    p = probe_video(tmp_path / "odd.mp4")
    assert (p.width, p.height) == (34, 22)


def test_written_colours_survive_the_yuv_round_trip(tmp_path):
    import numpy as np

    from runtime.video_io import VideoReader, VideoWriter, probe_video

    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (40, 160, 220), (128, 128, 128), (255, 255, 255)]
    image = np.zeros((64, 64 * len(colours), 3), np.uint8)
    for i, c in enumerate(colours):
        image[:, 64 * i : 64 * (i + 1)] = c
    w = VideoWriter(tmp_path / "colours.mp4", image.shape[1], 64, time_base=Fraction(1, 10), rate=Fraction(10))
    for i in range(3):
        w.write(image, i)
    w.finish()
    reader = VideoReader(probe_video(tmp_path / "colours.mp4"))
    frames = [f.bgr() for f in reader]
    reader.close()
    assert len(frames) == 3
    for i, c in enumerate(colours):
        got = frames[-1][16:48, 64 * i + 16 : 64 * i + 48].reshape(-1, 3).mean(0)
        assert np.abs(got - np.array(c)).max() < 8, (c, got)
