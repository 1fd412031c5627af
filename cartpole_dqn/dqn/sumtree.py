"""A vectorized sum tree for proportional prioritized replay (Schaul et al. 2016, arXiv:1511.05952).

Leaves hold priorities; every inner node holds the sum of its 32 children. Updates and searches take
whole batches: the Python loop runs over the tree's levels, never over the batch (Tianshou's
``SegmentTree`` layout, wider). The tree stops growing upwards at the first level with at most
8,192 nodes, and has no root: a search starts at the deepest level whose used part (the tree fills
from the left) has at most 8,192 nodes, where all targets look up one cumulative sum of that part
at once (its last element is the total), and walks only the levels below it, among 32 children. A
100,000-slot buffer thus has two levels: an update writes the leaves and one level of block sums,
and a search walks no level while the buffer holds up to 8,192 transitions, one level above that.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BRANCHING = 32
GLOBAL_SEARCH_MAX = 8192  # a level with at most this many used nodes is searched with one cumsum
# Sums and prefix sums over a node's 32 children as matrix products: one BLAS call for the whole
# batch, where numpy's row-wise reductions loop over the rows.
_ONES = np.ones(BRANCHING)
_INCLUSIVE = np.triu(np.ones((BRANCHING, BRANCHING)))  # children @ _INCLUSIVE: prefix sums, inclusive


def _padded(n: int) -> int:
    return -(-n // BRANCHING) * BRANCHING


class SumTree:
    """Sum tree over ``capacity`` non-negative leaf values (float64).

    ``levels[-1]`` holds the leaves; each level above holds the sums of 32 consecutive nodes of the
    level below, up to the first level of at most 8,192 nodes (``levels[0]``; for a capacity up to
    8,192 that is the leaves themselves). Every level is padded with zeros to a multiple of the
    branching factor, so node ``i`` of a level owns entries ``32 i .. 32 i + 31`` of the level below.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        sizes = [_padded(capacity)]
        while sizes[-1] > GLOBAL_SEARCH_MAX:
            sizes.append(_padded(sizes[-1] // BRANCHING))
        self.levels = [np.zeros(size) for size in reversed(sizes)]
        self.used = 0  # one past the highest leaf ever written: the rest of the tree is zeros

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_nodes" in state:  # a binary tree pickled by 0.1.0
            leaves = state["_nodes"][state["_leaf_base"] : state["_leaf_base"] + state["capacity"]]
        elif state["levels"][0].size == 1 and len(state["levels"]) > 1:  # 0.3.0's, with a root level
            leaves = state["levels"][-1][: state["capacity"]]
        else:
            self.__dict__.update(state)
            return
        self.__init__(state["capacity"])  # type: ignore[misc]
        self.update(np.arange(self.capacity), leaves)
        self.used = state.get("used", self.capacity)

    @property
    def leaves(self) -> np.ndarray:
        return self.levels[-1]

    @property
    def total(self) -> float:
        """The sum of all leaves (what sampling divides by)."""
        return float(self._search_start()[1][-1])

    def __getitem__(self, index: np.ndarray | int) -> np.ndarray:
        return self.leaves[np.asarray(index)]

    def values(self) -> np.ndarray:
        """All leaf values (a copy)."""
        return self.leaves[: self.capacity].copy()

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``indices`` to ``values`` (the last write wins for repeated indices)."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        values = np.asarray(values, dtype=np.float64)
        values = values.ravel() if values.size == indices.size else np.broadcast_to(values, indices.shape)
        if indices.size == 0:
            return
        highest = int(indices.max())
        if indices.min() < 0 or highest >= self.capacity:
            raise IndexError(f"leaf index out of range [0, {self.capacity})")
        if not (values.min() >= 0 and values.max() < np.inf):  # NaN fails both comparisons
            raise ValueError("sum tree values must be finite and non-negative")
        self.leaves[indices] = values
        self.used = max(self.used, highest + 1)
        # A node's sum is always its children's row times _ONES (one way, so one rounding, whichever
        # path wrote it last).
        if indices.size == 1:  # add() of one transition: plain Python beats the array calls
            node = int(indices[0])
            for level in range(len(self.levels) - 2, -1, -1):
                node //= BRANCHING
                block = self.levels[level + 1][node * BRANCHING : (node + 1) * BRANCHING]
                self.levels[level][node] = block @ _ONES
            return
        nodes = indices
        for level in range(len(self.levels) - 2, -1, -1):
            # Repeated parents are written several times with the same sum: no need to deduplicate.
            nodes = nodes // BRANCHING
            children = self.levels[level + 1].reshape(-1, BRANCHING)
            self.levels[level][nodes] = children[nodes] @ _ONES

    def _search_start(self) -> tuple[int, np.ndarray]:
        """The level a search starts at and its cumulative sums, with a 0 in front: ``prefix[i]``
        is the sum of that level's nodes before node ``i``, ``prefix[-1]`` the total."""
        start, used = 0, 1
        for index in range(len(self.levels) - 1, -1, -1):  # the deepest level with few used nodes
            used = -(-max(self.used, 1) // BRANCHING ** (len(self.levels) - 1 - index))
            if used <= GLOBAL_SEARCH_MAX:
                start = index
                break
        prefix = np.empty(used + 1)
        prefix[0] = 0.0
        np.cumsum(self.levels[start][:used], out=prefix[1:])
        return start, prefix

    def _descend(self, start: int, prefix: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The leaves covering ``targets`` (each in [0, total)) and their values."""
        # The node whose span holds the target: the last whose exclusive prefix is at most it.
        nodes = np.searchsorted(prefix, targets, side="right") - 1  # >= 0: prefix[0] = 0 <= target
        np.minimum(nodes, prefix.size - 2, out=nodes)
        below = self.levels[start + 1 :]
        if below:
            remaining = targets - prefix[nodes]
            rows = np.arange(targets.size)
            for depth, level in enumerate(below, start=1):
                children = level.reshape(-1, BRANCHING)[nodes]  # (batch, 32)
                inclusive = children @ _INCLUSIVE
                # the child whose span holds the target: the first whose inclusive prefix passes it
                # (the last child if rounding left the target at or past the node's sum)
                beyond = inclusive > remaining[:, None]
                beyond[:, -1] = True
                chosen = beyond.argmax(axis=1)
                if depth < len(below):
                    remaining -= inclusive[rows, chosen] - children[rows, chosen]
                nodes = nodes * BRANCHING + chosen
        leaves = nodes
        values = self.leaves[leaves]  # padding included: a leaf past the capacity holds 0
        # Rounding can land a target just past the last non-zero leaf; pull it back onto one.
        empty = values <= 0
        if empty.any():
            nonzero = np.flatnonzero(self.values() > 0)
            if nonzero.size:
                pos = np.searchsorted(nonzero, leaves[empty], side="right") - 1
                leaves[empty] = nonzero[np.clip(pos, 0, nonzero.size - 1)]
                values = self.leaves[leaves]
        return leaves, values

    def find_prefixsum(self, targets: np.ndarray) -> np.ndarray:
        """For each target t in [0, total), the leaf i with prefix(i) <= t < prefix(i) + value(i)."""
        start, prefix = self._search_start()
        return self._descend(start, prefix, np.maximum(np.asarray(targets, dtype=np.float64), 0.0))[0]

    def sample_proportional(
        self, batch_size: int, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``batch_size`` leaves with probability proportional to their value, one per stratum
        of the total; returns them and their probabilities (value / total)."""
        start, prefix = self._search_start()
        total = prefix[-1]
        if not total > 0:
            raise ValueError("cannot sample from a sum tree whose total is zero")
        uniform = rng.random(batch_size) if rng is not None else np.random.random(batch_size)
        targets = (np.arange(batch_size) + uniform) * (total / batch_size)
        np.minimum(targets, np.nextafter(total, 0.0), out=targets)
        leaves, values = self._descend(start, prefix, targets)
        return leaves, values / total

    def sample_stratified(self, batch_size: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Draw ``batch_size`` leaves with probability proportional to their value, one per stratum."""
        return self.sample_proportional(batch_size, rng)[0]
