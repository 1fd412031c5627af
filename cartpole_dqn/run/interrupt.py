"""Ctrl-C during training: finish the env step in progress, checkpoint there, stop.

While :func:`checkpoint_on_sigint` is active, the first SIGINT only sets a flag; the solve callback
reads it after the next env step, saves a checkpoint at that step and stops ``learn()``, and the
runner raises :class:`RunInterrupted` instead of finishing the run, so the CLI can print the exact
``--resume`` command. A second Ctrl-C stops at once (Python's usual ``KeyboardInterrupt``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_requested = threading.Event()


def interrupt_requested() -> bool:
    return _requested.is_set()


def request_stop(signum: int = signal.SIGINT, frame: Any = None) -> None:
    """A signal handler: the first call asks the run to stop at the next env step; a second stops at once."""
    if _requested.is_set():
        raise KeyboardInterrupt
    _requested.set()


def request_stop_once(signum: int = signal.SIGTERM, frame: Any = None) -> None:
    """A worker process's handler: every signal only asks the run to stop at the next env step (the
    parent that sent it kills the worker when it wants it gone at once)."""
    _requested.set()


@contextmanager
def checkpoint_on_sigint(signals: tuple[int, ...] = (signal.SIGINT,)) -> Iterator[None]:
    """Turn the first of ``signals`` into a checkpoint-and-stop request (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, request_stop) for s in signals}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        _requested.clear()


class RunInterrupted(Exception):
    """Training stopped on Ctrl-C; a checkpoint at ``step`` is in ``run_dir`` (None: none written)."""

    def __init__(self, run_dir: Path, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted at step {step:,}")
        self.run_dir = run_dir
        self.step = step
        self.checkpoint = checkpoint
