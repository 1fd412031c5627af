from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpole_dqn.dqn.sumtree import BRANCHING, SumTree

_updates = st.lists(
    st.tuples(st.integers(min_value=0, max_value=36), st.floats(min_value=0, max_value=1e3)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(min_value=1, max_value=37), updates=_updates)
def test_total_is_the_sum_of_leaves_after_any_updates(
    capacity: int, updates: list[tuple[int, float]]
) -> None:
    tree = SumTree(capacity)
    reference = np.zeros(capacity)
    for index, value in updates:
        index %= capacity
        tree.update(np.array([index]), np.array([value]))
        reference[index] = value
    np.testing.assert_allclose(tree.values(), reference)
    assert tree.total == pytest.approx(reference.sum(), rel=1e-12, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=40),
    fractions=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=20),
)
def test_prefix_sum_search_returns_the_leaf_covering_the_target(
    values: list[float], fractions: list[float]
) -> None:
    leaves = np.array(values)
    if leaves.sum() <= 0:
        leaves[0] = 1.0
    tree = SumTree(len(leaves))
    tree.update(np.arange(len(leaves)), leaves)
    targets = np.array(fractions) * tree.total
    found = tree.find_prefixsum(targets)
    prefix = np.concatenate([[0.0], np.cumsum(leaves)])
    for target, leaf in zip(targets, found, strict=True):
        assert leaves[leaf] > 0, "never lands on an empty leaf"
        assert prefix[leaf] - 1e-9 <= target < prefix[leaf + 1] + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(min_value=2, max_value=300),
    writes=st.lists(
        st.tuples(st.integers(min_value=0, max_value=299), st.floats(min_value=0, max_value=1e3)),
        min_size=5,  # more than the scalar path takes: the vectorized level-by-level update runs
        max_size=200,
    ),
)
def test_batched_update_with_repeated_indices_keeps_every_sum_consistent(
    capacity: int, writes: list[tuple[int, float]]
) -> None:
    tree = SumTree(capacity)
    tree.update(np.arange(capacity), np.ones(capacity))
    indices = np.array([i % capacity for i, _ in writes])
    values = np.array([v for _, v in writes])
    tree.update(indices, values)
    reference = np.ones(capacity)
    for index, value in zip(indices, values, strict=True):
        reference[index] = value  # the last write wins
    np.testing.assert_array_equal(tree.values(), reference)
    for parent, children in zip(tree.levels, tree.levels[1:], strict=False):  # every inner node
        sums = children.reshape(-1, BRANCHING).sum(axis=1)
        np.testing.assert_allclose(parent[: sums.size], sums, rtol=1e-12)
        assert not parent[sums.size :].any()  # padding stays empty
    assert tree.total == pytest.approx(reference.sum(), rel=1e-12)


def test_stratified_sampling_is_proportional_to_the_values() -> None:
    rng = np.random.default_rng(0)
    priorities = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 10.0])
    tree = SumTree(len(priorities))
    tree.update(np.arange(len(priorities)), priorities)
    draws = np.concatenate([tree.sample_stratified(64, rng) for _ in range(2000)])
    frequencies = np.bincount(draws, minlength=len(priorities)) / draws.size
    expected = priorities / priorities.sum()
    # 128k draws: a binomial standard error below 0.0015; 0.01 is over six of them.
    np.testing.assert_allclose(frequencies, expected, atol=0.01)
    assert frequencies[4] == 0.0


def test_invalid_updates_are_rejected() -> None:
    tree = SumTree(4)
    with pytest.raises(IndexError):
        tree.update(np.array([4]), np.array([1.0]))
    for bad in (-1.0, np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError):
            tree.update(np.array([0, 1]), np.array([1.0, bad]))
    with pytest.raises(IndexError):
        tree.update(np.array([0, -1]), np.array([1.0, 1.0]))
    assert tree.total == 0.0  # nothing written by a refused update
    with pytest.raises(ValueError):
        tree.sample_stratified(4)


@pytest.mark.parametrize("capacity", [100_000, 300_000])
@pytest.mark.parametrize("stored", [5_000, 60_000, 100_000])
def test_large_trees_search_and_sum_as_one_flat_prefix_sum_does(capacity: int, stored: int) -> None:
    """Above 8,192 leaves the search starts at a level of block sums (two levels for 100,000 slots,
    three for 300,000): every leaf it finds covers its target in the flat prefix sum of the leaves."""
    rng = np.random.default_rng(capacity + stored)
    values = rng.exponential(size=stored) * (rng.random(stored) > 0.2)  # a fifth of them empty
    tree = SumTree(capacity)
    tree.update(np.arange(stored), values)
    tree.update(rng.integers(0, stored, size=64), rng.exponential(size=64))  # a batched rewrite
    leaves = tree.values()[:stored]
    assert len(tree.levels) == (2 if capacity == 100_000 else 3)
    for parent, children in zip(tree.levels, tree.levels[1:], strict=False):
        sums = children.reshape(-1, BRANCHING).sum(axis=1)
        np.testing.assert_allclose(parent[: sums.size], sums, rtol=1e-12)
        assert not parent[sums.size :].any()
    prefix = np.concatenate([[0.0], np.cumsum(leaves)])
    assert tree.total == pytest.approx(prefix[-1], rel=1e-12)
    targets = np.concatenate([rng.random(2000) * tree.total, [0.0, np.nextafter(tree.total, 0.0)]])
    found = tree.find_prefixsum(targets)
    assert (leaves[found] > 0).all(), "never lands on an empty leaf"
    tolerance = 1e-9 * prefix[-1]
    assert (prefix[found] - tolerance <= targets).all() and (targets < prefix[found + 1] + tolerance).all()
    drawn, probabilities = tree.sample_proportional(256, rng)
    np.testing.assert_allclose(probabilities, leaves[drawn] / prefix[-1], rtol=1e-12)


def test_a_tree_pickled_with_a_root_level_is_rebuilt_from_its_leaves() -> None:
    """0.3.0's trees grew up to a one-node root: unpickling one rebuilds today's levels."""
    import pickle

    capacity = 9_000
    leaves = np.zeros(9_024)
    leaves[:7_000] = np.random.default_rng(5).exponential(size=7_000)
    blocks = leaves.reshape(-1, BRANCHING).sum(axis=1)
    blocks = np.concatenate([blocks, np.zeros(288 - blocks.size)])
    old_state = {"capacity": capacity, "levels": [np.array([blocks.sum()]), blocks, leaves], "used": 7_000}
    old = SumTree.__new__(SumTree)
    old.__dict__.update(old_state)  # as 0.3.0's unpickling left it
    tree = pickle.loads(pickle.dumps(old))
    assert [level.size for level in tree.levels] == [288, 9_024]
    np.testing.assert_array_equal(tree.values(), leaves[:capacity])
    assert tree.used == 7_000 and tree.total == pytest.approx(leaves.sum(), rel=1e-12)
    assert tree.sample_stratified(64).max() < 7_000


@pytest.mark.parametrize("capacity", [10, 100_000])
def test_targets_outside_the_total_land_on_the_first_and_last_non_empty_leaves(capacity: int) -> None:
    stored = min(capacity, 9_000)  # past 8,192 leaves the search starts one level up
    tree = SumTree(capacity)
    tree.update(np.arange(stored), np.arange(stored) % 3)  # leaf 0 and every third one empty
    found = tree.find_prefixsum(np.array([-5.0, 0.0, tree.total, 2 * tree.total]))
    last = max(i for i in range(stored) if i % 3)
    np.testing.assert_array_equal(found, [1, 1, last, last])


def test_one_by_one_and_batched_writes_leave_the_same_sums_to_the_last_bit() -> None:
    """A node's sum does not depend on which path wrote it (one transition's add, or a batch)."""
    rng = np.random.default_rng(4)
    indices = rng.permutation(5000)
    values = rng.exponential(size=indices.size) * 10.0 ** rng.integers(-6, 6, size=indices.size)
    one_by_one, batched = SumTree(5000), SumTree(5000)
    for index, value in zip(indices, values, strict=True):
        one_by_one.update(np.array([index]), np.array([value]))
    batched.update(indices, values)
    for ours, theirs in zip(one_by_one.levels, batched.levels, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert one_by_one.total == batched.total
