"""Ctrl-C and SIGTERM, handled the same way everywhere, and the console scripts' start.

SIGTERM (what `timeout`, systemd and `docker stop` send) is turned into `Terminated`, a kind of
KeyboardInterrupt, so every place that finishes its work cleanly on Ctrl-C does so on SIGTERM too;
the process then exits 143 instead of 130. While a job finishes a file after the first interrupt,
further ones are noted and ignored, so a quick double Ctrl-C cannot throw that finish away.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): finished cleanly with what was done
EXIT_TERMINATED = 143  # SIGTERM (timeout, docker stop, systemd): likewise


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def exit_code(interrupt: BaseException | str | None) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (the exception, or its name as signal_name gives it)."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) or interrupt == "SIGTERM" else EXIT_INTERRUPTED


def signal_name(interrupt: BaseException | None) -> str:
    return "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C"


def handle_sigterm() -> None:
    """Make SIGTERM raise Terminated in the main thread (a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextmanager
def interrupts_deferred(on_repeat: Callable[[str], None] | None = None) -> Iterator[None]:
    """Within the block, Ctrl-C and SIGTERM only call `on_repeat`; the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, frame: object) -> None:
        if on_repeat:
            on_repeat("SIGTERM" if signum == signal.SIGTERM else "Ctrl-C")

    old = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def launch(module: str, prog: str) -> NoReturn:
    """Run `module`'s Typer app as the console script `prog`. An interrupt at any point, the
    imports included, ends with one line and exit code 130 (Ctrl-C) or 143 (SIGTERM)."""
    handle_sigterm()
    try:
        import click

        app = importlib.import_module(module).app
        code = app(prog_name=prog, standalone_mode=False)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.Abort):  # click's wrapping of a KeyboardInterrupt
            _interrupted(exc.__cause__ or exc.__context__)
        if not isinstance(exc, click.exceptions.ClickException):
            raise
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted(exc: BaseException | None) -> NoReturn:
    print(f"interrupted ({signal_name(exc)})", file=sys.stderr)
    sys.exit(exit_code(exc))
