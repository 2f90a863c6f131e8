"""dbd-bench: the fps JSON schema, stage accounting, and eval on a set with a known answer."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.evaluate import evaluate_folder
from trainer.synthetic import SyntheticConfig, synthetic_samples, write_dataset

runner = CliRunner()


def test_fps_json_schema(tiny_onnx, tiny_checkpoint, clip_with_audio, tmp_path):
    pytest.importorskip("torch")
    log = tmp_path / "bench.jsonl"
    args = ["fps", "--model", str(tiny_onnx), "--checkpoint", str(tiny_checkpoint), "--compare", "onnxruntime,torch"]
    args += ["--video", str(clip_with_audio), "--warmup", "1", "--iters", "3", "--json", "--log", str(log)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc["machine"]) >= {"cpu", "cores", "gpu", "driver", "cuda", "tensorrt", "onnxruntime", "torch"}
    assert [r["backend"] for r in doc["results"]] == ["onnxruntime", "torch"]
    for r in doc["results"]:
        assert set(r) >= {"backend", "device", "precision", "imgsz", "fps", "latency_ms", "stages_ms", "e2e_fps"}
        assert set(r["latency_ms"]) == {"p50", "p90", "p99"}
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        assert set(r["stages_ms"]) == {"decode", "preprocess", "host_to_device", "compute", "device_to_host", "postprocess", "overlay", "encode"}
        assert r["fps"] > 0 and r["e2e_fps"] > 0
        # Stages come from a single-threaded pass, so they account for its whole time per frame.
        assert 0.75 * r["stages_total_ms"] <= sum(r["stages_ms"].values()) <= 1.05 * r["stages_total_ms"]
    assert doc["results"][0]["ratio_fps"] == 1.0
    assert json.loads(log.read_text().splitlines()[0])["results"][1]["backend"] == "torch"


def test_fps_synthetic_clip_and_bad_backend(tiny_onnx, tiny_checkpoint):
    res = runner.invoke(app, ["fps", "--model", str(tiny_onnx), "--synthetic", "64x48", "--warmup", "1", "--iters", "2", "--no-pipeline", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["stages_ms"] is None
    bad = runner.invoke(app, ["fps", "--model", str(tiny_checkpoint), "--backend", "tensorrt", "--no-pipeline"])
    assert bad.exit_code == 2 and "reads .engine/.onnx files, not .pt" in bad.output


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    samples = synthetic_samples(4, seed=5, cfg=SyntheticConfig(height=48, width=64))
    write_dataset(samples, root)
    return root, {s.stem: s for s in samples}


def test_eval_known_answers(synthetic_set, tmp_path):
    root, truth = synthetic_set
    # An oracle that reads the true mask back scores perfectly; its inverse scores zero.
    import cv2

    def oracle(image):
        stem = next(k for k, s in truth.items() if np.array_equal(s.image, image))
        return truth[stem].in_focus.astype(np.float32)

    perfect, rows = evaluate_folder(root, "white", None, oracle, per_image_csv=tmp_path / "p.csv")
    assert perfect.mae == 0 and perfect.f_beta == pytest.approx(1) and perfect.max_f == pytest.approx(1)
    assert len(rows) == 4 and len((tmp_path / "p.csv").read_text().splitlines()) == 5
    inverse, _ = evaluate_folder(root, "white", None, lambda im: 1 - oracle(im))
    assert inverse.mae == 1 and inverse.f_beta == 0
    assert cv2  # the oracle's images came back through OpenCV's PNG round trip unchanged


def test_eval_cli_table_json_and_plot(synthetic_set, tiny_onnx, tmp_path):
    root, _ = synthetic_set
    names = tmp_path / "names.txt"
    names.write_text("synthetic_00000\nsynthetic_00002\n")
    res = runner.invoke(app, ["eval", "--data", str(root), "--names", str(names), "--model", str(tiny_onnx), "--plot", str(tmp_path / "pr.png"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    (row,) = doc.values()
    assert row["images"] == 2 and 0 <= row["mae"] <= 1 and 0 <= row["f_beta"] <= 1
    assert (tmp_path / "pr.png").stat().st_size > 1000
    missing = runner.invoke(app, ["eval", "--data", str(tmp_path / "nothing"), "--model", str(tiny_onnx)])
    assert missing.exit_code == 2 and "nothing" in missing.output
