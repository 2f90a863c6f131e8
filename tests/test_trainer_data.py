"""Dataset pairing and its errors, augmentation, synthetic scenes, split, teacher cache."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.datasets import DatasetError, find_pairs, load_samples, read_mask, seeded_split
from trainer.data import AugmentConfig, augment
from trainer.synthetic import SyntheticConfig, render_scene, synthetic_samples, write_dataset


def _dataset(root: Path, stems=("a", "b"), size=(20, 30)) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for s in stems:
        cv2.imwrite(str(root / "images" / f"{s}.jpg"), np.full((*size, 3), 120, np.uint8))
        m = np.zeros(size, np.uint8)
        m[:, : size[1] // 2] = 255
        cv2.imwrite(str(root / "masks" / f"{s}.png"), m)
    return root


def test_pairs_by_stem_and_polarity(tmp_path):
    root = _dataset(tmp_path / "d")
    pairs = find_pairs(root)
    assert [p.stem for p in pairs] == ["a", "b"]
    white = read_mask(pairs[0].mask, "white")
    black = read_mask(pairs[0].mask, "black")
    assert white[:, :15].all() and not white[:, 15:].any()
    assert np.array_equal(black, ~white)


def test_rgba_mask_is_reduced_to_grey(tmp_path):
    m = np.zeros((4, 4, 4), np.uint8)
    m[:2] = 255
    cv2.imwrite(str(tmp_path / "m.png"), m)
    assert read_mask(tmp_path / "m.png", "white").tolist() == [[True] * 4] * 2 + [[False] * 4] * 2


@pytest.mark.parametrize(
    "breakage,fragment",
    [
        (lambda r: (r / "masks" / "b.png").unlink(), "b.jpg: image has no mask"),
        (lambda r: (r / "images" / "a.jpg").unlink(), "a.png: mask has no image"),
        (lambda r: [p.unlink() for p in (r / "images").iterdir()] and [p.unlink() for p in (r / "masks").iterdir()], "no images"),
        (lambda r: __import__("shutil").rmtree(r / "masks"), "missing folder"),
    ],
)
def test_pairing_errors_name_the_file(tmp_path, breakage, fragment):
    root = _dataset(tmp_path / "d")
    breakage(root)
    with pytest.raises(DatasetError, match=fragment):
        find_pairs(root)


def test_size_mismatch_and_unreadable_files_are_errors_or_counted_warnings(tmp_path):
    root = _dataset(tmp_path / "d", stems=("a", "b", "c"))
    cv2.imwrite(str(root / "masks" / "b.png"), np.zeros((10, 10), np.uint8))
    (root / "images" / "c.jpg").write_bytes(b"garbage")
    pairs = find_pairs(root)
    with pytest.raises(DatasetError, match="b.png: mask is 10x10, its image b.jpg is 30x20"):
        load_samples(pairs, "white")
    report = load_samples(pairs, "white", skip_bad=True)
    assert [s.stem for s in report.samples] == ["a"]
    assert len(report.skipped) == 2 and any("c.jpg: unreadable" in w for w in report.skipped)


def test_seeded_split_is_reproducible_and_disjoint():
    stems = [f"s{i:03d}" for i in range(100)]
    tr, va = seeded_split(stems, 0.1, seed=0)
    assert len(va) == 10 and not set(tr) & set(va) and len(tr) + len(va) == 100
    assert seeded_split(stems, 0.1, seed=0) == (tr, va)
    assert seeded_split(stems, 0.1, seed=1)[1] != va


def test_augment_keeps_mask_binary_and_aligned():
    rng = np.random.default_rng(0)
    img = np.zeros((60, 80, 3), np.uint8)
    img[:, :40] = 255
    mask = np.zeros((60, 80), bool)
    mask[:, :40] = True
    depth = mask.astype(np.float32)
    for _ in range(10):
        a, m, d = augment(img, mask, depth, AugmentConfig(size=32, jitter=0.0), rng)
        assert a.shape == (32, 32, 3) and m.shape == (32, 32) and m.dtype == bool
        # White pixels coincide with the mask (up to the one interpolated column).
        assert np.mean((a[..., 0] > 127) == m) > 0.9
        assert np.mean((d > 0.5) == m) > 0.9


def test_synthetic_scene_focus_follows_blur():
    s = render_scene(np.random.default_rng(4), SyntheticConfig(height=96, width=128))
    assert s.image.shape == (96, 128, 3) and s.in_focus.shape == (96, 128)
    assert s.depth.min() >= 0 and s.depth.max() <= 1
    lap = np.abs(cv2.Laplacian(cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY).astype(np.float32), cv2.CV_32F))
    if s.in_focus.any() and (~s.in_focus).any():
        assert lap[s.in_focus].mean() > lap[~s.in_focus].mean()


def test_synthetic_dataset_round_trips_through_folder_loader(tmp_path):
    samples = synthetic_samples(3, seed=1, cfg=SyntheticConfig(height=32, width=48))
    write_dataset(samples, tmp_path / "syn")
    loaded = load_samples(find_pairs(tmp_path / "syn"), "white").samples
    assert [np.array_equal(a.in_focus, b.in_focus) for a, b in zip(samples, loaded)] == [True] * 3


def _tiny_teacher(path: Path) -> None:
    """A 16x16 NHWC 'depth' model: the mean of the channels."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["im"], ["depth"], keepdims=1, axes=[3])],
        "t",
        [helper.make_tensor_value_info("im", TensorProto.FLOAT, [1, 16, 16, 3])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 16, 16, 1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_teacher_maps_are_cached_by_content(tmp_path):
    pytest.importorskip("onnx")
    from trainer.teacher import OnnxDepthTeacher, TeacherConfig, image_key

    _tiny_teacher(tmp_path / "t.onnx")
    img_path = tmp_path / "im.png"
    img = np.zeros((16, 16, 3), np.uint8)
    img[:, 8:] = 200
    cv2.imwrite(str(img_path), img)
    t1 = OnnxDepthTeacher(TeacherConfig(tmp_path / "t.onnx", near="low"), tmp_path / "cache")
    assert (t1.layout, t1.size) == ("nhwc", (16, 16))
    d1 = t1.depth_cached(img, image_key(img_path))
    assert t1.computed == 1 and d1.shape == (16, 16)
    assert d1[:, :8].max() == 0 and d1[:, 8:].min() == 1  # robustly normalised to [0, 1]
    t2 = OnnxDepthTeacher(TeacherConfig(tmp_path / "t.onnx", near="low"), tmp_path / "cache")
    d2 = t2.depth_cached(img, image_key(img_path))
    assert t2.computed == 0 and np.array_equal(d1, d2)
    t3 = OnnxDepthTeacher(TeacherConfig(tmp_path / "t.onnx", near="high"), tmp_path / "cache")
    assert np.array_equal(t3.depth_cached(img, image_key(img_path)), 1 - d1)  # other polarity, other cache entry
    assert t3.computed == 1
