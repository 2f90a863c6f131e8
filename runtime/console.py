"""What every command prints on stderr, and its exit codes; one place for the CLIs' conventions.

Messages are never parsed as Rich markup: file names such as `shot[draft].mp4` or `a[/b].png`
must print as they are, so only our own fixed prefixes carry a style.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.text import Text

from runtime.interrupts import EXIT_INTERRUPTED, EXIT_TERMINATED

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran, but its result fails a check (e.g. dbd-export check above target)
EXIT_BAD_INPUT = 2  # bad input or a missing dependency: nothing was done
__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "err", "say", "warn", "note", "error", "fail"]

err = Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str, style: str | None = None) -> None:
    """One line on stderr, printed literally."""
    err.print(Text(message, style=style or ""))


def _prefixed(prefix: str, style: str, message: str) -> None:
    err.print(Text.assemble((prefix, style), " ", message))


def warn(message: str) -> None:
    _prefixed("warning:", "yellow", message)


def note(message: str) -> None:
    _prefixed("note:", "yellow", message)


def error(message: str) -> None:
    _prefixed("error:", "red", message)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print `error: message` and return the Exit to raise."""
    error(message)
    return typer.Exit(code)
