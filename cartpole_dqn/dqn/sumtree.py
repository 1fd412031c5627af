"""A vectorized sum tree for proportional prioritized replay (Schaul et al. 2016, arXiv:1511.05952).

Leaves hold priorities; every inner node holds the sum of its two children, so the root is the
total and a prefix-sum search walks one root-to-leaf path. Updates and searches take whole
batches: the Python loop runs over the tree's depth (about 17 levels for 100k slots), never
over the batch (the layout of Tianshou's ``SegmentTree``).
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Sum tree over ``capacity`` non-negative leaf values (float64)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._depth = max(int(np.ceil(np.log2(capacity))), 0)
        self._leaf_base = 1 << self._depth  # index of the first leaf in the heap array
        self._nodes = np.zeros(2 * self._leaf_base, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self._nodes[1])  # the root (also the only leaf when capacity is 1)

    def __getitem__(self, index: np.ndarray | int) -> np.ndarray:
        return self._nodes[np.asarray(index) + self._leaf_base]

    def values(self) -> np.ndarray:
        """All leaf values (a copy)."""
        return self._nodes[self._leaf_base : self._leaf_base + self.capacity].copy()

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``indices`` to ``values`` (the last write wins for repeated indices)."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), indices.shape)
        if indices.size == 0:
            return
        if indices.min() < 0 or indices.max() >= self.capacity:
            raise IndexError(f"leaf index out of range [0, {self.capacity})")
        if np.any(values < 0) or not np.all(np.isfinite(values)):
            raise ValueError("sum tree values must be finite and non-negative")
        nodes = indices + self._leaf_base
        self._nodes[nodes] = values
        if nodes.size <= 4:  # e.g. add() of one step: plain Python beats ~17 levels of numpy calls
            tree = self._nodes
            for node in nodes.tolist():
                while node > 1:
                    node >>= 1
                    tree[node] = tree[2 * node] + tree[2 * node + 1]
            return
        for _ in range(self._depth):
            # Repeated parents are written several times with the same sum: no need to deduplicate.
            nodes >>= 1
            self._nodes[nodes] = self._nodes[2 * nodes] + self._nodes[2 * nodes + 1]

    def find_prefixsum(self, targets: np.ndarray) -> np.ndarray:
        """For each target t in [0, total), the leaf i with prefix(i) <= t < prefix(i) + value(i)."""
        targets = np.asarray(targets, dtype=np.float64).copy()
        nodes = np.ones(targets.shape, dtype=np.int64)
        for _ in range(self._depth):
            nodes <<= 1  # the left child
            left_sum = self._nodes[nodes]
            go_right = targets >= left_sum
            targets -= left_sum * go_right
            nodes += go_right
        leaves = nodes - self._leaf_base
        # Rounding can land a target just past the last non-zero leaf; pull it back onto one.
        empty = self._nodes[nodes] <= 0
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
