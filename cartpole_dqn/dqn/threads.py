"""How many CPU threads torch uses while an agent learns.

Torch's default is one intra-op thread per core. For the small MLPs DQN trains on classic-control
tasks each operation is too short to split: the threads spend longer synchronizing than computing,
and on a machine whose cores are busy with other work they also wait for each other. The plug-in
agents therefore learn with one thread by default (``torch_threads=1``), as the command line does;
``torch_threads=None`` leaves torch's own setting alone (for large networks, or a GPU).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch as th


def check_torch_threads(threads: int | None) -> int | None:
    """``threads`` if it is None or a positive integer; else a ValueError saying what is allowed."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"torch_threads must be None or an integer >= 1, got {threads!r}")
    return threads


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: unchanged), then restore the previous."""
    if threads is None:
        yield
        return
    previous = th.get_num_threads()
    th.set_num_threads(threads)
    try:
        yield
    finally:
        th.set_num_threads(previous)
