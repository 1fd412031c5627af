"""A vectorized sum tree for proportional prioritized replay (Schaul et al. 2016, arXiv:1511.05952).

Leaves hold priorities; every inner node holds the sum of its children, so the root is the total
and a prefix-sum search walks one root-to-leaf path. Updates and searches take whole batches: the
Python loop runs over the tree's levels, never over the batch (Tianshou's ``SegmentTree`` layout).
Each node has 32 children, not 2: a 100,000-slot buffer needs 4 levels instead of 17 (an update
costs a few numpy calls per level). A search does not walk from the root: at the deepest level
whose used part (the tree fills from the left) has at most 8,192 nodes, all targets look up one
cumulative sum of that part at once, and only the levels below it are searched per target, among
32 children: none while the buffer holds up to 8,192 transitions, one for 100,000.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BRANCHING = 32
GLOBAL_SEARCH_MAX = 8192  # a level with at most this many used nodes is searched with one cumsum


def _padded(n: int) -> int:
    return -(-n // BRANCHING) * BRANCHING


class SumTree:
    """Sum tree over ``capacity`` non-negative leaf values (float64).

    ``levels[0]`` is the root (one node); ``levels[-1]`` the leaves. Each level below the root is
    padded with zeros to a multiple of the branching factor, so node ``i`` of a level owns entries
    ``32 i .. 32 i + 31`` of the level below.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        sizes = [_padded(capacity)]
        while sizes[-1] > BRANCHING:
            sizes.append(_padded(sizes[-1] // BRANCHING))
        self.levels = [np.zeros(1)] + [np.zeros(size) for size in reversed(sizes)]
        self.used = 0  # one past the highest leaf ever written: the rest of the tree is zeros

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_nodes" in state:  # a binary tree pickled by 0.1.0: rebuild from its leaves
            leaves = state["_nodes"][state["_leaf_base"] : state["_leaf_base"] + state["capacity"]]
            self.__init__(state["capacity"])  # type: ignore[misc]
            self.update(np.arange(self.capacity), leaves)
        else:
            self.__dict__.update(state)

    @property
    def leaves(self) -> np.ndarray:
        return self.levels[-1]

    @property
    def total(self) -> float:
        return float(self.levels[0][0])

    def __getitem__(self, index: np.ndarray | int) -> np.ndarray:
        return self.leaves[np.asarray(index)]

    def values(self) -> np.ndarray:
        """All leaf values (a copy)."""
        return self.leaves[: self.capacity].copy()

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``indices`` to ``values`` (the last write wins for repeated indices)."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), indices.shape)
        if indices.size == 0:
            return
        highest = int(indices.max())
        if indices.min() < 0 or highest >= self.capacity:
            raise IndexError(f"leaf index out of range [0, {self.capacity})")
        if not (values.min() >= 0 and values.max() < np.inf):  # NaN fails both comparisons
            raise ValueError("sum tree values must be finite and non-negative")
        self.leaves[indices] = values
        self.used = max(self.used, highest + 1)
        if indices.size == 1:  # add() of one transition: plain Python beats the array calls
            node = int(indices[0])
            for level in range(len(self.levels) - 2, -1, -1):
                node //= BRANCHING
                block = self.levels[level + 1][node * BRANCHING : (node + 1) * BRANCHING]
                self.levels[level][node] = block.sum()
            return
        nodes = indices
        for level in range(len(self.levels) - 2, -1, -1):
            # Repeated parents are written several times with the same sum: no need to deduplicate.
            nodes = nodes // BRANCHING
            children = self.levels[level + 1].reshape(-1, BRANCHING)
            self.levels[level][nodes] = children[nodes].sum(axis=1)

    def find_prefixsum(self, targets: np.ndarray) -> np.ndarray:
        """For each target t in [0, total), the leaf i with prefix(i) <= t < prefix(i) + value(i)."""
        remaining = np.asarray(targets, dtype=np.float64).copy()
        # Down to the deepest level that is still small, every target searches the same array: one
        # cumulative sum of that level and one vectorized searchsorted replace the walk from the root.
        start, used = 0, 1
        for index in range(len(self.levels) - 1, -1, -1):  # the deepest level with few used nodes
            used = -(-max(self.used, 1) // BRANCHING ** (len(self.levels) - 1 - index))
            if used <= GLOBAL_SEARCH_MAX:
                start = index
                break
        prefix = np.cumsum(self.levels[start][:used])
        nodes = np.minimum(np.searchsorted(prefix, remaining, side="right"), prefix.size - 1)
        if start < len(self.levels) - 1:
            remaining -= prefix[nodes] - self.levels[start][nodes]
        rows = np.arange(remaining.size)
        for level in self.levels[start + 1 :]:
            children = level.reshape(-1, BRANCHING)[nodes]  # (batch, 32)
            inclusive = children.cumsum(axis=1)
            beyond = inclusive > remaining[:, None]
            # the child whose span holds the target: the first whose inclusive prefix passes it
            chosen = np.where(beyond[:, -1], beyond.argmax(axis=1), BRANCHING - 1)
            remaining -= inclusive[rows, chosen] - children[rows, chosen]
            nodes = nodes * BRANCHING + chosen
        leaves = nodes
        # Rounding can land a target just past the last non-zero leaf; pull it back onto one.
        empty = (leaves >= self.capacity) | (self.leaves[np.minimum(leaves, self.capacity - 1)] <= 0)
        if np.any(empty):
            nonzero = np.flatnonzero(self.values() > 0)
            if nonzero.size:
                pos = np.searchsorted(nonzero, leaves[empty], side="right") - 1
                leaves[empty] = nonzero[np.clip(pos, 0, nonzero.size - 1)]
        return np.minimum(leaves, self.capacity - 1)

    def sample_stratified(self, batch_size: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Draw ``batch_size`` leaves with probability proportional to their value, one per stratum."""
        total = self.total
        if total <= 0:
            raise ValueError("cannot sample from a sum tree whose total is zero")
        uniform = rng.random(batch_size) if rng is not None else np.random.random(batch_size)
        targets = (np.arange(batch_size) + uniform) * (total / batch_size)
        targets = np.minimum(targets, np.nextafter(total, 0.0))
        return self.find_prefixsum(targets)
