"""dbd-rt image and dbd-rt info."""

import json

import cv2
import numpy as np
from typer.testing import CliRunner

from runtime.cli import app

runner = CliRunner()


def _photo(path, h=37, w=51, channels=3):
    img = np.random.default_rng(0).integers(0, 256, (h, w, channels) if channels else (h, w), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return path


def test_image_writes_views_and_native_size_maps(tmp_path, contract_onnx):
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "a.png")
    _photo(photos / "grey.png", channels=0)
    _photo(photos / "rgba.png", channels=4)
    res = runner.invoke(app, ["image", str(photos), "--out", str(tmp_path / "out"), "--save-maps", str(tmp_path / "maps"), "--model", str(contract_onnx), "--json"])
    assert res.exit_code == 0, res.output
    for stem in ("a", "grey", "rgba"):
        view = cv2.imread(str(tmp_path / "out" / f"{stem}_overlay.png"))
        assert view.shape == (37, 51, 3)
        focus = cv2.imread(str(tmp_path / "maps" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        depth = cv2.imread(str(tmp_path / "maps" / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
        assert focus.shape == depth.shape == (37, 51)
        assert focus.dtype == np.uint8 and depth.dtype == np.uint16
    assert json.loads(res.stdout.strip().splitlines()[-1])["images"] == 3


def test_image_names_the_unreadable_file_and_exits_2(tmp_path, contract_onnx):
    good = _photo(tmp_path / "good.png")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    res = runner.invoke(app, ["image", str(good), str(bad), "--out", str(tmp_path / "out"), "--model", str(contract_onnx)])
    assert res.exit_code == 2
    assert "broken.jpg" in res.output and "unreadable" in res.output
    assert (tmp_path / "out" / "good_overlay.png").is_file()


def test_image_missing_path(tmp_path, contract_onnx):
    res = runner.invoke(app, ["image", str(tmp_path / "ghost.png"), "--out", str(tmp_path / "o"), "--model", str(contract_onnx)])
    assert res.exit_code == 2 and "ghost.png" in res.output


def test_info_reports_model_metadata_and_backends(tiny_onnx):
    res = runner.invoke(app, ["info", "--model", str(tiny_onnx), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["model"]["input_size"] == "64x64"
    assert doc["model"]["metadata"]["backbone"] == "tf_efficientnet_lite0"
    assert doc["backends"]["onnxruntime"].startswith("yes")


def test_webcam_without_a_camera_names_the_device(contract_onnx):
    res = runner.invoke(app, ["webcam", "--device", "/dev/video99", "--no-show", "--model", str(contract_onnx)])
    assert res.exit_code == 2
    assert "/dev/video99" in res.output
