"""Elapsed time and ETA as progress lines print them (benchmark runs, sweep trials, validation runs)."""

from __future__ import annotations


def clock(seconds: float) -> str:
    seconds = max(round(seconds), 0)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def eta(elapsed: float, done: int, remaining: int) -> str:
    """The time left at the pace so far ("?" before anything finished)."""
    if remaining <= 0:
        return clock(0)
    return "?" if done <= 0 else clock(elapsed / done * remaining)
