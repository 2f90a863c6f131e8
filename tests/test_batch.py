"""dbd-rt batch: focus reports, resumability, failures, local workers and a real local Ray."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from bench.clips import ken_burns, write_clip
from runtime.cli import app
from runtime.focus_report import FocusReport, FrameRow, ReportConfig, frame_row, roi_slices
from runtime.model_info import SAMPLE_CLIP
from runtime.video_io import read_frames

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


# ------------------------------------------------------------------ the report itself


def _row(t: float, soft: bool) -> FrameRow:
    return FrameRow(t, 0.5, 0.9, 0.2 if soft else 0.8, 0.5, soft)


def test_soft_segments_run_from_first_to_last_soft_frame():
    report = FocusReport()
    for i, soft in enumerate([False, True, True, False, True, False, True]):
        report.add(_row(i / 10, soft))
    assert report.soft_segments() == [(0.1, 0.2), (0.4, 0.4), (0.6, 0.6)]
    assert report.soft_share() == pytest.approx(4 / 7)
    assert report.timeline().shape == (240, 960, 3)


def test_frame_numbers_follow_the_maps():
    focus = np.zeros((30, 60), np.float32)
    focus[:, :20] = 1.0  # the left third sharp
    depth = np.tile(np.linspace(0, 1, 60, dtype=np.float32), (30, 1))
    row = frame_row(1.5, focus, depth, (300, 600), ReportConfig())
    assert row.in_focus_share == pytest.approx(1 / 3) and row.peak_score == pytest.approx(1.0)
    assert row.roi_score == pytest.approx(0.0) and not row.soft  # something is sharp: not soft without --roi
    assert row.focal_depth == pytest.approx(float(np.median(depth[:, :20])))
    left = ReportConfig(roi=(0, 0, 150, 300))
    assert roi_slices(left, (300, 600), (30, 60)) == (slice(0, 30), slice(0, 15))
    assert frame_row(0, focus, depth, (300, 600), ReportConfig(roi=(400, 0, 200, 300))).soft  # the chosen region is soft


# ------------------------------------------------------------------ inputs


def _clip(path: Path, frames: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (64, 140, 3), dtype=np.uint8), (0, 0), 1.5)
    write_clip(path, (base[:, i : i + 96].copy() for i in range(frames)), rate=Fraction(24))
    return path


@pytest.fixture(scope="module")
def batch_inputs(tmp_path_factory) -> Path:
    """Three clips (one in a sub-folder, one with the same stem as a photo), three photos, one
    broken video and one broken photo, and a manifest."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "shots" / "day2").mkdir(parents=True)
    _clip(root / "shots" / "a.mp4", seed=1)
    _clip(root / "shots" / "day2" / "b.mp4", seed=2)
    _clip(root / "shots" / "p1.mp4", frames=8, seed=3)
    for i in range(3):
        photo = cv2.GaussianBlur(np.random.default_rng(10 + i).integers(0, 256, (48, 64, 3), dtype=np.uint8), (0, 0), 1 + 2 * i)
        cv2.imwrite(str(root / "shots" / f"p{i}.jpg"), photo)
    (root / "shots" / "broken.mp4").write_bytes(b"not a video" * 50)
    (root / "shots" / "broken.jpg").write_bytes(b"not a photo")
    (root / "list.txt").write_text("shots/a.mp4\n# a comment\nmissing.mp4\n")
    return root


def _batch(inputs: list[Path], out: Path, *extra: str, model: Path | None = None):
    args = ["batch", *map(str, inputs), "--out", str(out), "--json", *extra]
    if model is not None:
        args += ["--model", str(model)]
    res = runner.invoke(app, args)
    doc = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else None
    return res, doc


def _by_source(doc) -> dict[str, dict]:
    return {Path(r["source"]).name + ("@" + str(Path(r["source"]).parent.name)): r for r in doc["inputs"]}


@pytest.mark.slow
def test_batch_reports_every_input_skips_finished_work_and_says_which_failed(batch_inputs, tmp_path, contract_onnx):
    out = tmp_path / "out"
    res, doc = _batch([batch_inputs / "shots", batch_inputs / "list.txt"], out, "--workers", "2", model=contract_onnx)
    assert res.exit_code == 3, res.output  # some failed
    assert (doc["done"], doc["skipped"], doc["failed"]) == (6, 0, 3)
    reasons = " ".join(r["reason"] for r in doc["inputs"] if r["status"] == "failed")
    assert "broken.mp4: not a readable video" in reasons and "broken.jpg: unreadable" in reasons and "missing.mp4: file not found" in reasons
    assert (out / "shots" / "a_overlay.mp4").is_file() and (out / "shots" / "day2" / "b_focus.jsonl").is_file()
    rows = [json.loads(x) for x in (out / "shots" / "a_focus.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and set(rows[0]) == {"time", "in_focus_share", "peak_score", "roi_score", "focal_depth", "soft"}
    assert rows[1]["time"] == pytest.approx(1 / 24, abs=1e-3)
    assert cv2.imread(str(out / "shots" / "a_timeline.png")).shape == (240, 960, 3)
    assert (out / "shots" / "p1-mp4_overlay.mp4").is_file() and (out / "shots" / "p1-jpg_overlay.png").is_file()  # same stem, both kept
    summary_csv = (out / "summary.csv").read_text().splitlines()
    assert summary_csv[0] == "source,kind,status,reason,soft_share,frames,seconds" and len(summary_csv) == 10
    again, doc2 = _batch([batch_inputs / "shots", batch_inputs / "list.txt"], out, "--workers", "2", model=contract_onnx)
    assert (doc2["done"], doc2["skipped"], doc2["failed"]) == (0, 6, 3)
    other, doc3 = _batch([batch_inputs / "shots" / "a.mp4"], out, "--workers", "1", "--soft-threshold", "0.9", model=contract_onnx)
    assert doc3["done"] == 1  # other options: not the same work, done again


@pytest.mark.slow
def test_ray_cluster_gives_the_same_reports_as_local_workers(batch_inputs, tmp_path, contract_onnx):
    pytest.importorskip("ray")
    inputs = [batch_inputs / "shots" / "a.mp4", batch_inputs / "shots" / "day2", batch_inputs / "shots" / "p0.jpg"]
    _, local = _batch(inputs, tmp_path / "local", "--workers", "2", "--no-video", model=contract_onnx)
    res, on_ray = _batch(inputs, tmp_path / "ray", "--workers", "2", "--no-video", "--cluster", "local", model=contract_onnx)
    assert res.exit_code == 0, res.output
    assert on_ray["done"] == local["done"] == 3
    for name, r in _by_source(local).items():
        assert _by_source(on_ray)[name]["soft_share"] == r["soft_share"] and _by_source(on_ray)[name]["frames"] == r["frames"]
    assert (tmp_path / "ray" / "a_focus.jsonl").read_text() == (tmp_path / "local" / "a_focus.jsonl").read_text()
    assert not list((tmp_path / "ray").glob("*.mp4"))  # --no-video


@pytest.mark.slow
def test_an_interrupted_batch_keeps_what_it_finished_and_a_rerun_does_only_the_rest(tmp_path, contract_onnx):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(8):
        _clip(folder / f"c{i}.mp4", frames=48, seed=i)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "runtime", "batch", str(folder), "--out", str(out), "--workers", "1", "--model", str(contract_onnx), "--preset", "medium"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / ".dbd-batch").glob("*.json")) if (out / ".dbd-batch").is_dir() else []) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    first = json.loads((out / "summary.json").read_text())
    assert 2 <= first["done"] < 8
    rerun = subprocess.run([*cmd, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    second = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert rerun.returncode == 0 and second["skipped"] == first["done"] and second["done"] == 8 - first["done"]
    assert not [p for p in out.rglob("*") if ".partial" in p.name]  # the killed job's temporary was cleaned up


@pytest.mark.slow
def test_a_focus_pull_away_and_back_is_found_within_a_few_frames(tmp_path):
    """A real photo at 30 fps: sharp, then defocused (blur rising to sigma 6 and back, as a
    focus pull away from everything in the frame), then sharp. The shipped model decides."""
    photo = read_frames(SAMPLE_CLIP, indices=(90,))[0]
    sharp = next(ken_burns(photo, 320, 240, 1, zoom=1.0, pan=0.0))
    sigmas = [0.0] * 30 + [6 * (1 - abs(i - 15) / 15) for i in range(31)] + [0.0] * 29
    frames = [sharp if s == 0 else cv2.GaussianBlur(sharp, (0, 0), s) for s in sigmas]
    clip = tmp_path / "pull.mp4"
    write_clip(clip, frames, rate=Fraction(30), crf=18)
    res, doc = _batch([clip], tmp_path / "out", "--workers", "1", "--no-video")
    assert res.exit_code == 0, res.output
    segments = json.loads((tmp_path / "out" / "pull_focus.json").read_text())["soft_segments"]
    assert len(segments) == 1
    start, end = (round(t * 30) for t in segments[0])
    crossing = [i for i, s in enumerate(sigmas) if s >= 3]  # where the blur passes sigma 3
    assert abs(start - crossing[0]) <= 4 and abs(end - crossing[-1]) <= 4, (start, end, crossing[0], crossing[-1])


def test_cluster_without_ray_says_how_to_install(batch_inputs, tmp_path, contract_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the cluster extra were not installed
    res, _ = _batch([batch_inputs / "shots" / "p0.jpg"], tmp_path / "out", "--cluster", "auto", model=contract_onnx)
    assert res.exit_code == 2 and "--cluster needs Ray: pip install 'dbd-rt[cluster]'" in res.output


def test_bad_roi_is_refused_before_any_work(tmp_path, contract_onnx):
    res, _ = _batch([tmp_path], tmp_path / "out", "--roi", "1,2,3", model=contract_onnx)
    assert res.exit_code == 2 and "--roi takes X,Y,W,H" in res.output and not (tmp_path / "out").exists()
