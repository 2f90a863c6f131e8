"""Ctrl-C and SIGTERM, handled the same way everywhere, and the console scripts' start.

SIGTERM (what `timeout`, systemd and `docker stop` send) is turned into `Terminated`, a kind of
KeyboardInterrupt, so every place that finishes its work cleanly on Ctrl-C does so on SIGTERM too;
the process then exits 143 instead of 130. While a job finishes a file after the first interrupt,
further ones are noted and ignored, so a quick double Ctrl-C cannot throw that finish away.
"""

from __future__ import annotations

import functools
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): finished cleanly with what was done
EXIT_TERMINATED = 143  # SIGTERM (timeout, docker stop, systemd): likewise


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C."""


class InterruptHandler:
    """The handler for SIGINT and SIGTERM: remembers the first one received and, once `raising` is
    set, raises KeyboardInterrupt or Terminated in the main thread."""

    def __init__(self) -> None:
        self.raising = False
        self.received: KeyboardInterrupt | None = None

    def __call__(self, signum: int, frame: object) -> None:
        interrupt = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        if self.received is None:
            self.received = interrupt
        if self.raising:
            raise interrupt

    def install(self) -> InterruptHandler:
        """Handle both signals (from the main thread only; a no-op elsewhere)."""
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, self)
        return self


def exit_code(interrupt: BaseException | str | None) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (the exception, or its name as signal_name gives it)."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) or interrupt == "SIGTERM" else EXIT_INTERRUPTED


def signal_name(interrupt: BaseException | None) -> str:
    return "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C"


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


class _Escaped(Exception):
    """An interrupt that left a command: carried past Typer, which would turn it into a silent 130."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        super().__init__(signal_name(interrupt))
        self.interrupt = interrupt


def _guarded(callback: Callable[..., Any], handler: InterruptHandler) -> Callable[..., Any]:
    """`callback` with interrupts raised only while it runs (one noted before it starts included)."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        handler.raising = True
        try:
            if handler.received is not None:
                raise handler.received
            return callback(*args, **kwargs)
        except KeyboardInterrupt as exc:
            raise _Escaped(exc) from exc

    return run


def launch(module: str, prog: str) -> NoReturn:
    """Run `module`'s Typer app as the console script `prog`. An interrupt at any point, the
    imports included, ends with one line and exit code 130 (Ctrl-C) or 143 (SIGTERM).

    Until a command's own code starts, an interrupt is only noted: raised in the middle of an
    extension module's initialisation it would come out as an ImportError or a RuntimeError, or
    kill the process with no word. Once the command runs it is raised there, where jobs finish
    their files cleanly. An error that follows an interrupt (a lazy import it broke, say) is
    reported as the interrupt it is.
    """
    handler = InterruptHandler().install()
    import click
    import typer.main

    command = typer.main.get_command(importlib.import_module(module).app)
    for cmd in [command, *getattr(command, "commands", {}).values()]:
        if cmd.callback is not None:
            cmd.callback = _guarded(cmd.callback, handler)
    try:
        code = command.main(prog_name=prog, standalone_mode=False)
    except _Escaped as exc:
        _interrupted(exc.interrupt)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception:
        if handler.received is None:
            raise
        _interrupted(handler.received)
    if handler.received is not None and not handler.raising:  # came while the command line was read
        _interrupted(handler.received)
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted(exc: BaseException | None) -> NoReturn:
    print(f"interrupted ({signal_name(exc)})", file=sys.stderr)
    sys.exit(exit_code(exc))
