"""dbd-prepare: datasets as their authors ship them, and the depth teacher check."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from trainer.prepare import CUHK_TEST100, app
from trainer.synthetic import SyntheticConfig, synthetic_samples

runner = CliRunner()


def _cuhk_like(root: Path, stems: list[str], motion: int = 2) -> None:
    """CUHK's own layout: image/ and gt/, masks 255 = blurred, motion-blurred photos beside."""
    (root / "image").mkdir(parents=True)
    (root / "gt").mkdir()
    for stem, s in zip(stems, synthetic_samples(len(stems), 1, SyntheticConfig(height=48, width=64))):
        cv2.imwrite(str(root / "image" / f"{stem}.jpg"), s.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(root / "gt" / f"{stem}.png"), np.where(s.in_focus, 0, 255).astype(np.uint8))
    for i in range(motion):
        cv2.imwrite(str(root / "image" / f"motion{i:04d}.jpg"), np.zeros((48, 64, 3), np.uint8))
        cv2.imwrite(str(root / "gt" / f"motion{i:04d}.png"), np.zeros((48, 64), np.uint8))


def test_cuhk_is_laid_out_split_and_its_polarity_measured(tmp_path):
    test_names = CUHK_TEST100.read_text().split()
    assert len(test_names) == 100 and len(set(test_names)) == 100
    stems = test_names[:3] + ["out_of_focus9001", "out_of_focus9002", "out_of_focus9003"]
    _cuhk_like(tmp_path / "src", stems)
    cv2.imwrite(str(tmp_path / "src" / "gt" / "out_of_focus9003.png"), np.zeros((10, 10), np.uint8))  # wrong size
    res = runner.invoke(app, ["cuhk", str(tmp_path / "src"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    assert sorted(p.stem for p in (out / "images").iterdir()) == sorted(stems[:5])
    assert (out / "test100.txt").read_text().split() == test_names[:3]
    assert (out / "train604.txt").read_text().split() == ["out_of_focus9001", "out_of_focus9002"]
    assert "out_of_focus9003.png: mask is 10x10" in res.output and "skipped 2 motion-blurred photos" in res.output
    assert "pass --mask-in-focus black" in res.output
    assert json.loads((out / "dataset.json").read_text())["mask_in_focus"] == "black"


def test_other_sets_get_their_polarity_measured_too(tmp_path):
    from trainer.synthetic import write_dataset

    write_dataset(synthetic_samples(4, 2, SyntheticConfig(height=48, width=64)), tmp_path / "dut")  # white = in focus
    res = runner.invoke(app, ["pairs", str(tmp_path / "dut" / "images"), str(tmp_path / "dut" / "masks"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "pass --mask-in-focus white" in res.output
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 4


def test_teacher_check_loads_and_runs_a_depth_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto as T
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["im0"], ["depth"], axes=[3], keepdims=1)],
        "teacher",
        [helper.make_tensor_value_info("im0", T.FLOAT, [1, 448, 640, 3])],
        [helper.make_tensor_value_info("depth", T.FLOAT, [1, 448, 640, 1])],
    )
    model = tmp_path / "teacher.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    res = runner.invoke(app, ["teacher", str(model)])
    assert res.exit_code == 0 and "output [1, 448, 640, 1]" in res.output
    res = runner.invoke(app, ["teacher", str(tmp_path / "none.onnx")])
    assert res.exit_code == 2 and "none.onnx: file not found" in res.output
