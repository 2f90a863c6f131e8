"""Writing files so that a reader never sees half of one: a temporary name, then a rename."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path


def temporary_path(path: Path, pid: int | None = None) -> Path:
    """Where `path` is written before it is complete: hidden, beside it, same suffix, and named for
    the process writing it, so a stale one left by a killed run can be told apart."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial-{os.getpid() if pid is None else pid}{path.suffix}")


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Run `write(temporary)`, then rename the temporary over `path`. On any error (a full disk, a
    failing encoder, Ctrl-C) the temporary is removed and `path` keeps what it had."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomically(path: Path, data: bytes) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete temporaries of `path` left by processes that no longer run (kill -9, power loss)."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.stem)}\.partial-(\d+){re.escape(path.suffix)}$")
    removed = []
    for candidate in path.parent.glob(f".{path.stem}.partial-*{path.suffix}"):
        match = pattern.match(candidate.name)
        if match and not _process_alive(int(match.group(1))):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process's own, from an earlier job that failed: not in use
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def unique_names(candidates: list[tuple[Path, str]]) -> dict[Path, str]:
    """A distinct output name per input, from (input, preferred name): the preferred one, or with
    the input's suffix added where names are shared (shot.jpg, shot.png -> shot-jpg, shot-png), or
    a counter after that."""
    from collections import Counter

    counts = Counter(name for _, name in candidates)
    names: dict[Path, str] = {}
    used: set[str] = set()
    for path, name in candidates:
        if counts[name] > 1:
            name = f"{name}-{path.suffix.lstrip('.').lower()}"
        base, n = name, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        names[path] = name
    return names
