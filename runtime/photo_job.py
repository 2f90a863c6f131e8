"""Photos through the model: each read upright, mapped at its own size, its view and maps written.

Photos are read as every viewer shows them: the EXIF orientation tag (6 and 8 for portrait phone
shots, 3 for upside down) is applied on reading, so the view and the saved maps line up with the
photo on screen. Output names come from the input's stem; inputs that share one (`shot.jpg`,
`shot.png`) get the suffix added (`shot-jpg`, `shot-png`), so no output overwrites another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from runtime.datasets import IMAGE_SUFFIXES
from runtime.files import unique_names, write_atomically
from runtime.map_writer import to_u16
from runtime.metrics import focus_png
from runtime.pipeline import FrameProcessor, Renderer


class PhotoError(ValueError):
    """Bad input or an output that cannot be written; the message names the file."""


@dataclass
class PhotoJobResult:
    photos: int
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    written: list[str] = field(default_factory=list)


def collect_images(paths: list[Path]) -> list[Path]:
    """The photo files named, folders expanded (not recursively), in order."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise PhotoError(f"{p}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise PhotoError(f"{p}: file not found")
    return files


def output_names(files: list[Path]) -> dict[Path, str]:
    """A distinct output name per input: its stem, or stem-suffix where stems are shared."""
    return unique_names([(f, f.stem) for f in files])


def read_photo(path: Path) -> np.ndarray | None:
    """BGR uint8 as viewers show it (EXIF orientation applied, alpha dropped, 16-bit scaled); None
    when OpenCV cannot read the file."""
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def write_png(path: Path, image: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        try:
            ok = cv2.imwrite(str(tmp), image)
        except cv2.error as exc:
            raise PhotoError(f"{path}: cannot write ({str(exc).strip().splitlines()[-1][:100]})") from None
        if not ok:
            raise PhotoError(f"{path}: cannot write (disk full, or the folder is not writable)")

    try:
        write_atomically(path, write)
    except OSError as exc:
        raise PhotoError(f"{path}: cannot write ({exc.strerror or exc})") from None


def process_photos(
    files: list[Path],
    out_dir: Path,
    maps_dir: Path | None,
    processor: FrameProcessor,
    renderer: Renderer,
    view_name: str,
    on_photo: Callable[[Path], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> PhotoJobResult:
    """Every photo in turn; an unreadable one is reported and skipped, an unwritable output stops all."""
    names = output_names(files)
    inputs = {f.resolve() for f in files}
    result = PhotoJobResult(photos=len(files))
    for f in files:
        image = read_photo(f)
        if image is None:
            result.failed.append((str(f), "unreadable or not an image"))
            if on_error:
                on_error(f"{f}: unreadable or not an image")
            continue
        frame = processor.process(image)
        targets = [(out_dir / f"{names[f]}_{view_name}.png", renderer(frame))]
        if maps_dir is not None:
            targets.append((maps_dir / f"{names[f]}.png", focus_png(frame.in_focus)))
            targets.append((maps_dir / f"{names[f]}_in_focus16.png", to_u16(frame.in_focus)))
            targets.append((maps_dir / f"{names[f]}_depth.png", to_u16(frame.depth)))
        for path, picture in targets:
            if path.resolve() in inputs:
                raise PhotoError(f"{path}: would overwrite an input photo; choose another folder")
            write_png(path, picture)
            result.written.append(str(path))
        if on_photo:
            on_photo(f)
    return result
