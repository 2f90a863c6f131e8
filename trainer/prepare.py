"""`dbd-prepare`: datasets and teachers as their authors distribute them -> what dbd-train reads.

- `cuhk SRC --out DIR`: the CUHK blur detection dataset (Shi, Xu and Jia, CVPR 2014): 704 defocused
  photos (`out_of_focus*`) with masks (255 = blurred), beside 296 motion-blurred ones (skipped).
  Writes DIR/images, DIR/masks, and the standard split: test100.txt (the 100 test photos of the DBD
  literature, shipped in trainer/splits/) and train604.txt (the rest).
- `pairs IMAGES MASKS --out DIR`: any other set paired by file stem (DUT-DBD: integer names,
  255 = in focus), with the mask polarity checked against the photos.
- `teacher MODEL.onnx`: checks a depth teacher (PyDNet++ converted to ONNX, MODEL_CARD.md says how).

Every pair is checked (readable, same size, binary mask) and the polarity is measured: in-focus
regions are sharper (more Laplacian energy) than blurred ones, so the colour whose regions are the
sharper in most photos is the in-focus one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import typer

from runtime.console import fail, note, say, warn
from runtime.datasets import IMAGE_SUFFIXES

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Prepare datasets and depth teachers for dbd-train and dbd-bench eval.")

CUHK_TEST100 = Path(__file__).parent / "splits" / "cuhk_test100.txt"
CUHK_DEFOCUS = 704
# The PyDNet++ ONNX that MODEL_CARD.md's conversion command produces (tf2onnx 1.17.0, opset 13).
PYDNETPP_SHA256 = "f648963e9c9df020ced5210061d11aec82e90684b2c5f43b0aebebea8a3a2cf2"


@dataclass
class PrepareReport:
    pairs: int = 0
    skipped: list[str] = field(default_factory=list)  # one line per file left out, naming it
    white_sharper: int = 0  # photos whose white mask region is the sharper one
    scored: int = 0
    mask_in_focus: str = "unknown"

    def polarity_share(self) -> float:
        return max(self.white_sharper, self.scored - self.white_sharper) / max(1, self.scored)


def _index(folder: Path, prefix: str = "") -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.stem.startswith(prefix)}


def _sharpness(grey: np.ndarray) -> np.ndarray:
    return np.abs(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F, ksize=3))


def check_pair(image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray, bool | None]:
    """(image, mask, white region sharper?) or ValueError naming the file. None: one class only."""
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{image_path}: unreadable image")
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"{mask_path}: unreadable mask")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, its photo {image.shape[1]}x{image.shape[0]}")
    middle = np.count_nonzero((mask > 8) & (mask < 247))
    if middle > 0.01 * mask.size:
        raise ValueError(f"{mask_path}: not a binary mask ({middle} of {mask.size} pixels are neither black nor white)")
    white = mask >= 128
    if white.all() or not white.any():
        return image, mask, None
    sharp = _sharpness(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    return image, mask, bool(sharp[white].mean() > sharp[~white].mean())


def write_pairs(pairs: dict[str, tuple[Path, Path]], out: Path, report: PrepareReport) -> list[str]:
    """Check and copy each pair to out/images and out/masks (masks as 8-bit grey PNG); the stems kept."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    kept = []
    for stem, (image_path, mask_path) in sorted(pairs.items()):
        try:
            _, mask, white_sharper = check_pair(image_path, mask_path)
        except ValueError as exc:
            report.skipped.append(str(exc))
            continue
        shutil.copyfile(image_path, out / "images" / f"{stem}{image_path.suffix.lower()}")
        cv2.imwrite(str(out / "masks" / f"{stem}.png"), np.where(mask >= 128, 255, 0).astype(np.uint8))
        kept.append(stem)
        if white_sharper is not None:
            report.scored += 1
            report.white_sharper += int(white_sharper)
    report.pairs = len(kept)
    report.mask_in_focus = "white" if report.white_sharper * 2 > report.scored else "black"
    return kept


def _write_manifest(out: Path, report: PrepareReport, extra: dict[str, object]) -> None:
    doc = {**asdict(report), "polarity_share": report.polarity_share(), **extra}
    (out / "dataset.json").write_text(json.dumps(doc, indent=2))


def _finish(out: Path, report: PrepareReport, expected_polarity: str | None) -> None:
    for line in report.skipped:
        warn(f"skipped {line}")
    share = report.polarity_share()
    say(f"{report.pairs} pairs in {out}; the {report.mask_in_focus} regions are the sharper in {share:.0%} of {report.scored} photos: pass --mask-in-focus {report.mask_in_focus}")
    if expected_polarity and report.mask_in_focus != expected_polarity:
        warn(f"the masks were expected to mark in-focus pixels {expected_polarity}; check the download")


@app.command()
def cuhk(
    source: Annotated[
        Path, typer.Argument(help="The unpacked CUHK blur detection dataset: a folder holding out_of_focus*.jpg photos and out_of_focus*.png masks (any subfolders).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write images/, masks/, test100.txt, train604.txt and dataset.json to.")],
) -> None:
    """CUHK's defocus part in dbd-train's layout, with the literature's 100-photo test split."""
    if not source.is_dir():
        raise fail(f"{source}: not a folder")
    photos, masks = {}, {}
    for path in sorted(source.rglob("out_of_focus*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            is_mask = path.suffix.lower() == ".png" and path.parent.name.lower() in ("gt", "masks", "mask", "groundtruth")
            (masks if is_mask else photos)[path.stem] = path
    missing = sorted(set(photos) ^ set(masks))
    if not photos:
        raise fail(f"{source}: no out_of_focus* photos found (expected CUHK's image/ and gt/ folders)")
    motion = len(_index(source, "motion"))
    report = PrepareReport()
    report.skipped += [f"{s}: photo or mask missing" for s in missing]
    kept = write_pairs({s: (photos[s], masks[s]) for s in photos if s in masks}, out, report)
    if report.pairs != CUHK_DEFOCUS:
        warn(f"{source}: {report.pairs} usable defocus pairs; the dataset has {CUHK_DEFOCUS}")
    test = [n.strip() for n in CUHK_TEST100.read_text().split() if n.strip()]
    absent = [n for n in test if n not in kept]
    if absent:
        warn(f"{len(absent)} of the 100 standard test photos are missing, e.g. {absent[0]}")
    if len(absent) < len(test):
        (out / "test100.txt").write_text("\n".join(n for n in test if n in kept) + "\n")
    (out / "train604.txt").write_text("\n".join(s for s in kept if s not in set(test)) + "\n")
    _write_manifest(out, report, {"dataset": "CUHK blur detection (Shi, Xu and Jia, CVPR 2014), defocus part", "motion_skipped": motion})
    if motion:
        note(f"skipped {motion} motion-blurred photos (not defocus)")
    _finish(out, report, expected_polarity="black")


@app.command()
def pairs(
    images: Annotated[Path, typer.Argument(help="Folder of photos.")],
    masks: Annotated[Path, typer.Argument(help="Folder of masks, paired with the photos by file stem.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write images/, masks/ and dataset.json to.")],
) -> None:
    """Any labelled set (DUT-DBD and others) in dbd-train's layout, its polarity measured."""
    for folder in (images, masks):
        if not folder.is_dir():
            raise fail(f"{folder}: not a folder")
    photos, labels = _index(images), _index(masks)
    if not photos:
        raise fail(f"{images}: no photos ({', '.join(IMAGE_SUFFIXES)})")
    report = PrepareReport()
    report.skipped += [f"{s}: no mask in {masks}" for s in sorted(set(photos) - set(labels))]
    write_pairs({s: (photos[s], labels[s]) for s in photos if s in labels}, out, report)
    _write_manifest(out, report, {"images": str(images), "masks": str(masks)})
    _finish(out, report, expected_polarity=None)


@app.command()
def teacher(model: Annotated[Path, typer.Argument(help="A monocular depth ONNX, e.g. pydnetpp.onnx made as MODEL_CARD.md says.")]) -> None:
    """Check a depth teacher: it loads, takes one NHWC or NCHW image, gives a map; PyDNet++'s checksum."""
    import onnxruntime as ort

    if not model.is_file():
        raise fail(f"{model}: file not found")
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    try:
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise fail(f"{model}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:160]})") from None
    (inp,) = session.get_inputs()[:1]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    if len(shape) != 4:
        raise fail(f"{model}: input {inp.name} is {inp.shape}; a depth teacher takes one [1, H, W, 3] or [1, 3, H, W] image")
    out = session.run(None, {inp.name: np.random.default_rng(0).random(shape, dtype=np.float32)})[0]
    known = " (the PyDNet++ conversion MODEL_CARD.md describes)" if digest == PYDNETPP_SHA256 else ""
    say(f"{model}: input {inp.name} {inp.shape}, output {list(out.shape)}, sha256 {digest[:16]}...{known}")
