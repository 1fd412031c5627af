"""Worker processes that never outlive the command that started them, and Ctrl-C handled once.

Sweeps, benchmarks and the tuner's selection run their training in spawned worker processes. Two
things keep them tied to the command:

- each child puts itself in its own process group, so a terminal's Ctrl-C (sent to the foreground
  group) reaches only the parent, which decides how to stop: the first Ctrl-C or SIGTERM asks the
  children to stop cleanly, a second one kills them at once;
- each child asks the kernel to send it a signal when its parent dies (Linux ``PR_SET_PDEATHSIG``),
  so a parent killed with SIGKILL, which runs no handler, still takes its workers with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

_PR_SET_PDEATHSIG = 1


def follow_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """In a child: leave the terminal's process group and receive ``signum`` when the parent dies."""
    with suppress(OSError):  # already a group leader
        os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os.kill(os.getpid(), signum)


@dataclass
class StopState:
    """What the parent was asked: the first stop signal (None: none yet)."""

    signum: int | None = None

    @property
    def exit_status(self) -> int:
        """The shell's status for a command stopped by this signal (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + (self.signum or 0)


@contextmanager
def stop_signals(on_first: Callable[[int], None], on_second: Callable[[], None]) -> Iterator[StopState]:
    """While active (main thread): the first SIGINT or SIGTERM records itself and calls ``on_first``;
    a second calls ``on_second`` and raises ``KeyboardInterrupt``."""
    state = StopState()

    def handler(signum: int, frame: Any) -> None:
        if state.signum is not None:
            on_second()
            raise KeyboardInterrupt
        state.signum = signum
        on_first(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)
