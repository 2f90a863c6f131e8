"""Live focus assist: the peaking and focus-plane views, region score and graph, magnifier, temporal
smoothing, the webcam loop driven headless by scripted keys, and maps saved frame-accurately."""

from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from runtime import overlay_i420
from runtime.focus_assist import AssistConfig, FocusAssist, parse_roi, roi_score, sharpest_box
from runtime.overlay import COLORS, FARTHER, NEARER, FocusThreshold, OverlayStyle, PeakingMode, View, focal_plane, focus_plane_view, peaking_view
from runtime.pipeline import FrameResult, Renderer, StageTimes
from runtime.smoothing import MapSmoother, SmoothingConfig

runner = CliRunner()


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    return cv2.GaussianBlur(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 0.8)


def _half_sharp(h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Left half sharp texture, right half blurred (with a blurred white square: a strong edge that
    is out of focus); the map says left = in focus."""
    frame = _texture(h, w)
    right = frame[:, w // 2 :].copy()
    right[h // 4 : 3 * h // 4, w // 8 : 3 * w // 8] = 255
    frame[:, w // 2 :] = cv2.GaussianBlur(right, (0, 0), 2.5)
    in_focus = np.zeros((h, w), np.float32)
    in_focus[:, : w // 2] = 1.0
    return frame, in_focus


def _is_colour(image: np.ndarray, bgr: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    return (np.abs(image.astype(int) - np.array(bgr)) <= tol).all(axis=2)


# ------------------------------------------------------------------ thresholds and views


def test_threshold_is_a_probability_or_the_sharpest_share():
    assert FocusThreshold.parse("0.6") == FocusThreshold(0.6, False)
    assert FocusThreshold.parse(" 20% ") == FocusThreshold(20.0, True)
    for bad in ("1.5", "0%", "100%", "abc", "-0.1"):
        with pytest.raises(ValueError):
            FocusThreshold.parse(bad)
    ramp = np.linspace(0, 1, 9_999, dtype=np.float32).reshape(101, 99)
    assert FocusThreshold(0.3).level(ramp) == 0.3
    assert abs(FocusThreshold(20.0, True).level(ramp) - 0.8) < 0.01  # the top fifth starts at 0.8
    assert FocusThreshold(0.95).nudged(up=True) == FocusThreshold(0.95) and FocusThreshold(0.5).nudged(up=False) == FocusThreshold(0.45)
    assert FocusThreshold(20.0, True).nudged(up=True) == FocusThreshold(15.0, True)  # stricter: a smaller share


def test_peaking_fill_tints_the_in_focus_region_over_a_grey_frame():
    frame, in_focus = _half_sharp()
    out = peaking_view(frame, in_focus, 0.5, "green", PeakingMode.fill, mono=True)
    right = out[:, 70:].astype(int)
    assert (right[..., 0] == right[..., 1]).all() and (right[..., 1] == right[..., 2]).all()  # grey where out of focus
    left = out[:, 4:60].astype(int)
    assert (left[..., 1] - left[..., 2]).mean() > 40  # green where in focus
    coloured = peaking_view(frame, in_focus, 0.5, "green", PeakingMode.fill, mono=False)
    assert np.array_equal(coloured[:, 70:], frame[:, 70:])


def test_peaking_edges_mark_only_edges_inside_the_in_focus_region():
    """The learned map's gain over edge peaking: the blurred square's strong edge would peak on a
    camera (Canny finds it); here it does not, because the map calls that area out of focus."""
    frame, in_focus = _half_sharp()
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    assert cv2.Canny(grey, 40, 80)[:, 70:].any()  # the premise: plain edge detection fires there
    out = peaking_view(frame, in_focus, 0.5, "red", PeakingMode.edges, mono=True)
    marked = _is_colour(out, COLORS["red"], tol=10)
    assert marked[:, :64].sum() > 100 and not marked[:, 66:].any()


def test_focus_plane_colours_nearer_warm_and_farther_cool_with_a_legend():
    h, w = 120, 240
    frame = np.full((h, w, 3), 128, np.uint8)
    in_focus = np.zeros((h, w), np.float32)
    in_focus[:, 100:140] = 1.0
    depth = np.full((h, w), 0.5, np.float32)
    depth[:, :80] = 0.1  # near (depth 0 is near)
    depth[:, 160:] = 0.9
    assert focal_plane(in_focus, depth, 0.5) == pytest.approx(0.5)
    out = focus_plane_view(frame, in_focus, depth, 0.5, legend=False).astype(int)
    near, far = out[10:100, 10:70], out[10:100, 170:200]
    assert (near[..., 2] - near[..., 0]).mean() > 60 and (far[..., 0] - far[..., 2]).mean() > 60
    assert np.abs(out[10:100, 105:135] - 128).max() <= 2  # in focus: the frame as it is
    legend = focus_plane_view(frame, in_focus, depth, 0.5)
    corner = legend[h // 2 :, w // 2 :]
    assert _is_colour(corner, NEARER, 5).any() and _is_colour(corner, FARTHER, 5).any()


def test_when_nothing_reaches_the_threshold_the_focal_plane_is_the_sharpest_part():
    in_focus = np.full((10, 10), 0.1, np.float32)
    in_focus[0, :5] = 0.3
    depth = np.full((10, 10), 0.9, np.float32)
    depth[0, :5] = 0.2
    assert focal_plane(in_focus, depth, 0.5) == pytest.approx(0.2)


# ------------------------------------------------------------------ region, graph, magnifier


def test_roi_parsing_and_score():
    assert parse_roi("10,20,30,40") == (10, 20, 30, 40)
    for bad in ("1,2,3", "a,b,c,d", "0,0,0,5", "-1,0,5,5"):
        with pytest.raises(ValueError, match="--roi"):
            parse_roi(bad)
    in_focus = np.zeros((30, 40), np.float32)
    in_focus[:15, :20] = 1.0  # the top-left quarter, at a quarter of the frame's size
    assert roi_score(in_focus, (0, 0, 80, 60), (120, 160)) == pytest.approx(1.0)
    assert roi_score(in_focus, (80, 60, 80, 60), (120, 160)) == pytest.approx(0.0)
    x, y, w, h = sharpest_box(in_focus, (120, 160), (20, 20))
    assert (w, h) == (20, 20) and x + w <= 80 and y + h <= 60


@pytest.mark.parametrize("i420", [False, True])
def test_magnifier_shows_the_frames_own_pixels_enlarged_around_the_region(i420):
    h, w = 120, 160
    frame = _texture(h, w, seed=3)
    if i420:  # compare against what the encoder's frame holds
        frame = overlay_i420.to_bgr(overlay_i420.from_bgr(frame))
    in_focus = np.full((h // 2, w // 2), 0.2, np.float32)
    assist = FocusAssist(AssistConfig(roi=(70, 50, 20, 20), magnifier=True, zoom=2.0))
    picture = np.zeros((h, w, 3), np.uint8)
    image = overlay_i420.from_bgr(picture) if i420 else picture
    assist.draw(image, i420, overlay_i420.from_bgr(frame) if i420 else frame, (h, w), in_focus, t=0.0)
    shown = overlay_i420.to_bgr(image) if i420 else image
    inset = shown[4:40, w - 50 + 4 : w - 4]  # inside the inset's border (the panel's top-right third)
    half = inset[::2, ::2] if not i420 else cv2.resize(inset, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    match = cv2.matchTemplate(frame, np.ascontiguousarray(half), cv2.TM_SQDIFF_NORMED)
    _, _, (mx, my), _ = cv2.minMaxLoc(match)
    assert match.min() < (0.01 if not i420 else 0.05)  # the frame's pixels, zoomed 2x
    assert 55 <= mx <= 85 and 40 <= my <= 65  # around the region of interest


def test_score_graph_keeps_the_last_seconds_of_media_time_and_the_hud_shows_the_score():
    h, w = 60, 80
    frame = _texture(h, w)
    renderer = Renderer(OverlayStyle(hud=True), StageTimes(), AssistConfig(roi=(0, 0, 40, 30), graph_seconds=2.0), time_base=Fraction(1, 10))
    sharp = np.ones((h // 2, w // 2), np.float32)
    for pts in range(50):
        renderer(FrameResult(frame, sharp, sharp, pts=pts))
    assert len(renderer.assist.history) == 21  # 2 s at 10 fps, both ends included
    assert renderer.assist.label() == "ROI 1.00"
    soft = renderer(FrameResult(frame, np.zeros_like(sharp), sharp, pts=50))
    good = renderer(FrameResult(frame, sharp, sharp, pts=51))
    # The region's outline turns amber when its score drops below the in-focus line, green above.
    assert _is_colour(soft[0:32, 36:44], (0, 170, 255), 30).any() and _is_colour(good[0:32, 36:44], (80, 220, 80), 30).any()


# ------------------------------------------------------------------ smoothing


def test_smoothing_cuts_flicker_on_a_still_scene_and_follows_a_real_change_at_once():
    rng = np.random.default_rng(1)
    frame = _texture(64, 96)
    base = np.clip(cv2.GaussianBlur(rng.random((64, 96)).astype(np.float32), (0, 0), 6) * 2 - 0.5, 0, 1)
    smoother = MapSmoother(SmoothingConfig(strength=0.7))
    raw, out = [], []
    for t in range(40):
        m = np.clip(base + rng.normal(0, 0.03, base.shape).astype(np.float32) + (0.5 if t >= 30 else 0.0), 0, 1)
        raw.append(m)
        out.append(smoother(frame, m, m)[0])

    def flicker(maps):
        return np.mean([np.abs(maps[t] - maps[t - 1]).mean() for t in range(1, 30)])

    assert flicker(out) < 0.5 * flicker(raw)
    step = np.abs(raw[30] - raw[29]).mean()
    assert np.abs(out[30] - raw[30]).mean() < 0.1 * step  # a focus change shows in the same frame


def test_smoothing_moves_the_map_with_the_picture_and_resets_on_a_cut():
    texture = _texture(80, 200, seed=5)
    smoother = MapSmoother(SmoothingConfig(strength=0.9))
    for t in range(10):  # the camera pans 3 px a frame; the in-focus square moves with the scene
        frame = np.ascontiguousarray(texture[:, 3 * t : 3 * t + 120])
        m = np.zeros((80, 120), np.float32)
        m[20:60, 60 - 3 * t : 90 - 3 * t] = 1.0
        out, _ = smoother(frame, m, m)
    assert np.abs(out - m).mean() < 0.05  # no trail left where the square was
    smoother.depth = False  # a view without depth: passed through as the network gave it
    noisy_depth = np.random.default_rng(2).random((80, 120)).astype(np.float32)
    assert smoother(frame, m, noisy_depth)[1] is noisy_depth
    other = _texture(80, 120, seed=9)
    fresh = np.full((80, 120), 0.25, np.float32)
    assert np.array_equal(smoother(other, fresh, fresh)[0], fresh) and smoother.cuts == 1


def test_focus_pull_scene_and_lag():
    from bench.flicker import PULL_STEP, focus_pull_scene, lag_frames

    near, far = _texture(96, 128, 1), _texture(96, 128, 2)
    frames, (x, y, w, h) = focus_pull_scene(near, far)
    assert len(frames) == 3 * PULL_STEP

    def sharpness(img, inside):
        lap = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F)
        box = np.zeros(lap.shape, bool)
        box[y : y + h, x : x + w] = True
        return float(lap[box if inside else ~box].var())

    a, b = frames[0], frames[PULL_STEP]
    assert sharpness(a, True) > 5 * sharpness(b, True) and sharpness(b, False) > 5 * sharpness(a, False)
    plain = np.r_[np.ones(PULL_STEP), np.zeros(PULL_STEP), np.ones(PULL_STEP)]
    late = plain.copy()
    late[PULL_STEP : PULL_STEP + 2] = 0.5  # two frames behind after the first step
    assert lag_frames(plain, plain) == [0, 0] and lag_frames(late, plain) == [2, 0]


# ------------------------------------------------------------------ the webcam loop, headless


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory) -> Path:
    from bench.clips import synthetic_frames, write_clip

    path = tmp_path_factory.mktemp("cam") / "cam.mp4"
    write_clip(path, synthetic_frames(96, 64, 45), rate=Fraction(30), tone_hz=None)
    return path


def _run(clip: Path, model: Path, tmp_path: Path, script: dict, record: bool = True):
    from runtime.backends import open_backend
    from runtime.camera_job import CameraConfig, ScriptedInput, open_camera, run_camera
    from runtime.pipeline import FrameProcessor

    config = CameraConfig(device=str(clip), show=False, snapshot_dir=tmp_path, record=tmp_path / "rec.mp4" if record else None)
    backend = open_backend(model)
    keys = ScriptedInput(script)
    renderer = Renderer(OverlayStyle(), StageTimes())
    processor = FrameProcessor(backend, renderer.times, 32, SmoothingConfig())
    try:
        result = run_camera(open_camera(config), config, processor, renderer, keys=keys, smoothing=SmoothingConfig())
    finally:
        backend.close()
    return result, keys, renderer, processor


def test_scripted_keys_drive_views_region_magnifier_recording_snapshots_and_ctrl_c(camera_clip, contract_onnx, tmp_path):
    script = {
        3: ["2"],  # side-by-side
        6: [("drag", 120, 10, 150, 40)],  # on the in-focus panel: the same frame region
        8: ["m", "1"],
        10: ["s"],
        12: ["r"],  # stops the recording started by --out
        14: ["r"],  # starts another
        16: ["f", "p", "+"],
        18: ["?"],
        21: ["ctrl-c"],
    }
    result, keys, renderer, processor = _run(camera_clip, contract_onnx, tmp_path, script)
    assert result.interrupted == "Ctrl-C"
    assert renderer.assist.config.roi == (24, 10, 30, 30) and renderer.assist.config.magnifier
    assert renderer.style.view is View.overlay and renderer.style.peaking is PeakingMode.edges and renderer.style.threshold == FocusThreshold(0.55)
    assert processor.smoother is None  # f turned it off
    assert len(result.snapshots) == 1 and Path(result.snapshots[0]).is_file()
    first, second = (Path(p) for p in result.recorded)
    assert first == tmp_path / "rec.mp4" and second.parent == tmp_path
    with av.open(str(first)) as c:
        widths = {f.width for f in c.decode(video=0)}
    assert widths == {96}  # the side-by-side frames were scaled into the first picture's size
    with av.open(str(second)) as c:
        assert sum(1 for _ in c.decode(video=0)) >= 5  # finished cleanly after Ctrl-C
    assert keys.shown[-1].mean() < 0.7 * keys.shown[0].mean()  # ? darkened the picture under the key list


class _DyingCamera:
    """A live camera (not a file) that delivers `frames` pictures, then nothing (unplugged)."""

    def __init__(self, frames: int) -> None:
        self.left, self.released = frames, False

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        time.sleep(0.01)
        return True, np.random.default_rng(self.left).integers(0, 256, (64, 96, 3), dtype=np.uint8)

    def release(self) -> None:
        self.released = True


def test_a_camera_that_stops_keeps_the_recording_made_so_far(contract_onnx, tmp_path):
    from runtime.backends import open_backend
    from runtime.camera_job import CameraConfig, CameraError, run_camera
    from runtime.pipeline import FrameProcessor

    cam, notes = _DyingCamera(12), []
    config = CameraConfig(device="0", show=False, record=tmp_path / "rec.mp4")
    backend = open_backend(contract_onnx)
    renderer = Renderer(OverlayStyle(), StageTimes())
    try:
        with pytest.raises(CameraError, match="stopped delivering frames"):
            run_camera(cam, config, FrameProcessor(backend, renderer.times, 32), renderer, on_note=notes.append)
    finally:
        backend.close()
    assert cam.released
    with av.open(str(tmp_path / "rec.mp4")) as container:
        assert 0 < sum(1 for _ in container.decode(video=0)) <= 12
    assert [n for n in notes if n.startswith(f"recorded {tmp_path / 'rec.mp4'}")]
    assert not [f for f in tmp_path.iterdir() if ".partial" in f.name]


def test_a_snapshot_that_cannot_be_written_is_said_and_the_view_goes_on(camera_clip, contract_onnx, tmp_path):
    from runtime.backends import open_backend
    from runtime.camera_job import CameraConfig, ScriptedInput, open_camera, run_camera
    from runtime.pipeline import FrameProcessor

    config = CameraConfig(device=str(camera_clip), show=False, snapshot_dir=tmp_path / "missing")
    backend, notes = open_backend(contract_onnx), []
    renderer = Renderer(OverlayStyle(), StageTimes())
    try:
        result = run_camera(open_camera(config), config, FrameProcessor(backend, renderer.times, 32), renderer, on_note=notes.append, keys=ScriptedInput({2: ["s"], 6: ["q"]}))
    finally:
        backend.close()
    assert result.snapshots == [] and result.frames >= 6
    assert [n for n in notes if "missing" in n and "cannot write" in n], notes


def test_every_key_in_the_help_is_bound_and_every_binding_is_in_the_help():
    from runtime.camera_job import KEYS, Controls

    controls = Controls(Renderer(OverlayStyle(), StageTimes()), None, None)  # type: ignore[arg-type]
    listed = {k for label, _ in KEYS if label != "drag" for k in label.replace(" / ", " ").split()}
    listed = {{"Esc": "\x1b", "space": " "}.get(k, k) for k in listed}
    assert listed == set(controls._bindings()) - {"=", "_"}


def test_pause_holds_the_picture_and_a_view_change_redraws_it(camera_clip, contract_onnx, tmp_path):
    result, keys, *_ = _run(camera_clip, contract_onnx, tmp_path, {3: [" "], 6: ["2"], 9: ["q"]}, record=False)
    assert result.frames <= 6 and result.interrupted is None  # nothing new while paused
    assert keys.shown[-1].shape[1] == 3 * 96  # the held frame, drawn in the new view


def test_webcam_command_plays_a_file_as_a_camera_with_scripted_keys(camera_clip, contract_onnx, tmp_path):
    from runtime.cli import app

    args = ["webcam", "--device", str(camera_clip), "--no-show", "--model", str(contract_onnx), "--imgsz", "32", "--snapshot-dir", str(tmp_path)]
    res = runner.invoke(app, [*args, "--keys", "2:5 4:drag=10,10,50,40 6:s 8:q", "--view", "peaking", "--threshold", "30%", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert 8 <= doc["frames"] <= 10 and len(doc["snapshots"]) == 1
    bad = runner.invoke(app, [*args, "--keys", "x:v"])
    assert bad.exit_code == 2 and "--keys: expected FRAME:EVENT" in bad.output
    bad = runner.invoke(app, [*args, "--threshold", "150%"])
    assert bad.exit_code == 2 and "--threshold" in bad.output


# ------------------------------------------------------------------ maps out


def _vfr_clip(path: Path, times: list[float]) -> Path:
    from bench.clips import synthetic_frames

    tb = Fraction(1, 1000)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = tb
        for img, t in zip(synthetic_frames(64, 48, len(times)), times):
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts, f.time_base = round(t * 1000), tb
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def _frames(path: Path) -> list[tuple[np.ndarray, float]]:
    with av.open(str(path)) as c:
        return [(f.to_ndarray(), float(f.time)) for f in c.decode(video=0)]


def test_save_maps_is_frame_accurate_in_every_format(tmp_path, contract_onnx):
    from runtime.cli import app

    times = [0.0, 0.033, 0.066, 0.1, 1.1, 1.133, 1.2, 1.25]  # variable frame rate, a 1 s hold
    src = _vfr_clip(tmp_path / "vfr.mp4", times)
    maps = tmp_path / "maps"
    res = runner.invoke(
        app, ["video", str(src), "--save-maps", str(maps), "--maps-format", "mkv", "--maps-format", "png", "--maps-format", "mp4", "--model", str(contract_onnx), "--imgsz", "32"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((maps / "maps.json").read_text())
    assert doc["frames"] == len(times) and (doc["width"], doc["height"]) == (64, 48)
    rows = (maps / "frames.csv").read_text().split()[1:]
    assert [round(float(r.split(",")[2]), 3) for r in rows] == times
    for name in ("in_focus", "depth"):
        lossless = _frames(maps / f"{name}.mkv")
        assert [round(t, 3) for _, t in lossless] == times
        pngs = sorted((maps / name).glob("*.png"))
        assert len(pngs) == len(times)
        first = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
        assert first.dtype == np.uint16 and first.shape == (48, 64)
        assert np.array_equal(lossless[0][0], first)  # FFV1 is lossless: the same 16-bit values
        grey = _frames(maps / f"{name}.mp4")
        assert [round(t, 3) for _, t in grey] == times
        assert np.abs(grey[0][0][:48].astype(int) - first.astype(int) // 257).mean() < 3
    assert not [p for p in maps.iterdir() if ".partial" in p.name]
    neither = runner.invoke(app, ["video", str(src), "--model", str(contract_onnx)])
    assert neither.exit_code == 2 and "--save-maps" in neither.output


def test_first_saved_map_is_the_networks_answer_for_that_frame(tmp_path, contract_onnx):
    """Values as documented: probability x 65535 at the frame's size (the first frame has no history
    for smoothing to blend)."""
    from runtime.backends import open_backend
    from runtime.cli import app
    from runtime.pipeline import FrameProcessor
    from runtime.video_io import read_frames

    src = _vfr_clip(tmp_path / "c.mp4", [0.0, 0.04, 0.08])
    res = runner.invoke(app, ["video", str(src), "--save-maps", str(tmp_path / "m"), "--maps-format", "png", "--model", str(contract_onnx), "--imgsz", "32"])
    assert res.exit_code == 0, res.output
    saved = cv2.imread(str(tmp_path / "m" / "in_focus" / "000000.png"), cv2.IMREAD_UNCHANGED) / 65535.0
    backend = open_backend(contract_onnx)
    try:
        want = FrameProcessor(backend, imgsz=32).process(read_frames(src, count=1)[0]).in_focus
    finally:
        backend.close()
    assert np.abs(saved - want).max() < 0.03  # the video path resizes from YUV, the reference from BGR
