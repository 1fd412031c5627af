"""Denormal floats flushed to zero while an update runs (x86 FTZ/DAZ, this thread only).

Gradients of rarely-active weights are tiny; Adam squares them into the denormal range, where x86
arithmetic is several times slower (figures: experiments/results/speed.md). Flushing them changes
no learning signal; the tests that compare an agent's update with its SB3 parent's run the parent's
update under the same setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch as th


@contextmanager
def flushed_denormals() -> Iterator[None]:
    """Flush denormals inside the block; the default (off) is restored after it, also on errors."""
    th.set_flush_denormal(True)
    try:
        yield
    finally:
        th.set_flush_denormal(False)
