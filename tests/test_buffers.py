from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.buffers import NStepReplayBuffer

from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer

OBS = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
ACT = spaces.Discrete(3)


def fill(buffer: NStepReplayBuffer, steps: int, n_envs: int, seed: int = 0) -> None:
    """Episodes of random length; obs encode (step, env) so each sample can be traced to its slot."""
    rng = np.random.default_rng(seed)
    for t in range(steps):
        obs = np.array([[t, e] for e in range(n_envs)], dtype=np.float32)
        next_obs = obs + np.array([1, 0], dtype=np.float32)
        actions = rng.integers(0, 3, size=(n_envs, 1))
        rewards = rng.normal(size=n_envs).astype(np.float32)
        dones = rng.random(n_envs) < 0.15
        infos = [{"TimeLimit.truncated": bool(rng.random() < 0.05)} for _ in range(n_envs)]
        buffer.add(obs, next_obs, actions, rewards, dones, infos)


def test_samples_match_sb3_nstep_buffer_at_the_same_rows() -> None:
    per = PrioritizedReplayBuffer(64, OBS, ACT, device="cpu", n_steps=3, gamma=0.9)
    ref = NStepReplayBuffer(64, OBS, ACT, device="cpu", n_steps=3, gamma=0.9)
    fill(per, 90, 1)  # wraps around: the n-step logic must respect the write position
    fill(ref, 90, 1)
    rows = np.arange(64)
    ours = per._samples_at(rows, np.zeros(64, dtype=np.int64), None)
    theirs = ref._get_samples(rows)
    for a, b in zip(ours, theirs, strict=True):
        th.testing.assert_close(a, b)


def test_multi_env_samples_come_from_the_drawn_slot() -> None:
    n_envs = 3
    per = PrioritizedReplayBuffer(60, OBS, ACT, device="cpu", n_envs=n_envs, n_steps=2, gamma=0.5)
    fill(per, 15, n_envs)
    samples = per.sample(256)
    rows, envs = np.divmod(samples.indices, n_envs)
    obs = samples.observations.numpy()
    np.testing.assert_array_equal(obs[:, 0], rows)  # obs[0] is the step = row (no wrap yet)
    np.testing.assert_array_equal(obs[:, 1], envs)
    np.testing.assert_array_equal(samples.actions.numpy().ravel(), per.actions[rows, envs, 0])
    # The n-step reward of each sample is the one computed on that env's own column.
    for e in range(n_envs):
        column = NStepReplayBuffer(20, OBS, ACT, device="cpu", n_steps=2, gamma=0.5)
        column.observations[:, 0] = per.observations[:, e]
        column.next_observations[:, 0] = per.next_observations[:, e]
        column.actions[:, 0] = per.actions[:, e]
        column.rewards[:, 0] = per.rewards[:, e]
        column.dones[:, 0] = per.dones[:, e]
        column.timeouts[:, 0] = per.timeouts[:, e]
        column.pos, column.full = per.pos, per.full
        mask = envs == e
        expected = column._get_samples(rows[mask])
        th.testing.assert_close(samples.rewards[mask], expected.rewards)
        th.testing.assert_close(samples.discounts[mask], expected.discounts)
        th.testing.assert_close(samples.next_observations[mask], expected.next_observations)


@pytest.mark.parametrize("n_envs", [1, 2])
def test_importance_weights_on_a_partly_filled_buffer_match_an_independent_computation(n_envs: int) -> None:
    """w_i = (N P(i)) ** -beta / max_j w_j, N = stored transitions, not the capacity (Schaul et al.)."""
    alpha, beta, eps = 0.7, 0.5, 1e-6
    per = PrioritizedReplayBuffer(
        16, OBS, ACT, device="cpu", n_envs=n_envs, alpha=alpha, beta_initial=beta, eps=eps
    )
    fill(per, 5, n_envs)  # 5 of 16 rows
    stored = 5 * n_envs
    td = np.random.default_rng(1).normal(scale=2.0, size=stored)
    per.update_priorities(np.arange(stored), td)
    samples = per.sample(64)
    priorities = (np.abs(td) + eps) ** alpha  # from the TD errors given, not read back from the tree
    probabilities = priorities / priorities.sum()
    expected = (stored * probabilities[samples.indices]) ** -beta
    expected /= expected.max()
    np.testing.assert_allclose(samples.weights.numpy().ravel(), expected, rtol=1e-6)
    wrong_n = (16 * n_envs * probabilities[samples.indices]) ** -beta
    assert not np.allclose(samples.weights.numpy().ravel(), wrong_n / wrong_n.max() * 2)
    assert samples.indices.max() < stored


def test_new_transitions_get_the_max_priority_and_beta_anneals() -> None:
    per = PrioritizedReplayBuffer(8, OBS, ACT, device="cpu", alpha=0.5, eps=0.01, beta_initial=0.4)
    fill(per, 2, 1)
    per.update_priorities(np.array([0, 1]), np.array([3.99, 0.0]))
    assert per.tree.values()[1] == pytest.approx(0.01**0.5)
    fill(per, 1, 1)
    assert per.tree.values()[2] == pytest.approx(4.0**0.5)
    per.anneal_beta(0.5)
    assert per.beta == pytest.approx(0.7)
    per.anneal_beta(2.0)
    assert per.beta == 1.0


def test_sampling_never_touches_unwritten_slots() -> None:
    per = PrioritizedReplayBuffer(100, OBS, ACT, device="cpu")
    fill(per, 5, 1)
    assert per.sample(500).indices.max() < 5


def test_dict_observations_are_refused_with_a_clear_message() -> None:
    dict_space = spaces.Dict({"position": OBS, "velocity": OBS})
    with pytest.raises(ValueError, match="PrioritizedReplayBuffer does not support Dict observation spaces"):
        PrioritizedReplayBuffer(16, dict_space, ACT, device="cpu")


def test_optimize_memory_usage_is_refused_in_our_own_name() -> None:
    with pytest.raises(NotImplementedError, match="PrioritizedReplayBuffer does not support optimize_memory"):
        PrioritizedReplayBuffer(16, OBS, ACT, device="cpu", optimize_memory_usage=True)


@settings(max_examples=60, deadline=None)
@given(
    n_envs=st.integers(min_value=1, max_value=3),
    n_steps=st.integers(min_value=1, max_value=4),
    capacity=st.integers(min_value=4, max_value=24),
    steps=st.integers(min_value=1, max_value=70),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_windowed_buffer_samples_are_sb3s_bit_for_bit(
    n_envs: int, n_steps: int, capacity: int, steps: int, seed: int
) -> None:
    """Same random draws, same values as SB3's NStepReplayBuffer (or ReplayBuffer for n_steps 1), after
    any number of transitions (wrapping around), with episode ends and time-outs anywhere."""
    from stable_baselines3.common.buffers import ReplayBuffer

    from cartpole_dqn.dqn.buffers import WindowedReplayBuffer

    ours = WindowedReplayBuffer(capacity, OBS, ACT, device="cpu", n_envs=n_envs, n_steps=n_steps, gamma=0.9)
    theirs = (
        ReplayBuffer(capacity, OBS, ACT, device="cpu", n_envs=n_envs)
        if n_steps == 1
        else NStepReplayBuffer(capacity, OBS, ACT, device="cpu", n_envs=n_envs, n_steps=n_steps, gamma=0.9)
    )
    fill(ours, steps, n_envs, seed)
    fill(theirs, steps, n_envs, seed)
    for draw in range(3):
        np.random.seed(seed + draw)
        a = ours.sample(32)
        np.random.seed(seed + draw)
        b = theirs.sample(32)
        for x, y in zip(a, b, strict=True):
            assert (x is None and y is None) or th.equal(x, y)
    kept = ours.window_lengths.copy()
    ours.recompute_windows()
    stored = capacity if ours.full else ours.pos
    np.testing.assert_array_equal(ours.window_lengths[:stored], kept[:stored])


def test_old_pickled_buffers_get_their_windows() -> None:
    """A PrioritizedReplayBuffer pickled by 0.1.0 has no window lengths: they are derived on load."""
    import pickle

    from cartpole_dqn.dqn.buffers import WindowedReplayBuffer

    buffer = PrioritizedReplayBuffer(16, OBS, ACT, device="cpu", n_steps=3, gamma=0.9)
    fill(buffer, 20, 1, seed=4)
    expected = buffer.window_lengths.copy()
    state = buffer.__dict__.copy()
    del state["window_lengths"]
    old = object.__new__(PrioritizedReplayBuffer)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert isinstance(old, WindowedReplayBuffer)
    np.testing.assert_array_equal(old.window_lengths, expected)


class EagerTreeWrites(PrioritizedReplayBuffer):
    """Writes every added transition into the tree at once, as the buffer did before adds waited."""

    def add(self, *args: Any, **kwargs: Any) -> None:
        super().add(*args, **kwargs)
        _ = self.tree


@pytest.mark.parametrize("n_envs", [1, 3])
def test_waiting_tree_writes_sample_and_update_as_eager_writes_do(n_envs: int) -> None:
    """Adds wait for the next read of the tree and are then written in one batch: every sample,
    weight, priority and inner sum is what writing each add at once gives, across wrap-arounds,
    rising max priorities and a pickle round trip with adds still waiting."""
    import pickle

    lazy = PrioritizedReplayBuffer(40, OBS, ACT, device="cpu", n_envs=n_envs, n_steps=3, alpha=0.6)
    eager = EagerTreeWrites(40, OBS, ACT, device="cpu", n_envs=n_envs, n_steps=3, alpha=0.6)
    rng = np.random.default_rng(1)
    for round_ in range(12):
        for buffer in (lazy, eager):
            fill(buffer, 7, n_envs, seed=round_)
        if round_ == 5:
            lazy = pickle.loads(pickle.dumps(lazy))
        errors = rng.normal(scale=1.0 + round_, size=16)  # the max priority keeps rising
        if round_ % 2:  # priorities updated straight after adds, with no sample between
            slots = rng.integers(0, lazy.size() * n_envs, size=16)
            for buffer in (lazy, eager):
                buffer.update_priorities(slots, errors)
        for buffer in (lazy, eager):
            np.random.seed(round_)
            samples = buffer.sample(16)
            buffer.update_priorities(samples.indices, errors)
        np.random.seed(round_)
        again = lazy.sample(16)
        np.random.seed(round_)
        reference = eager.sample(16)
        np.testing.assert_array_equal(again.indices, reference.indices)
        th.testing.assert_close(again.weights, reference.weights, rtol=0, atol=0)
        assert lazy.max_priority == eager.max_priority
    for ours, theirs in zip(lazy.tree.levels, eager.tree.levels, strict=True):
        np.testing.assert_array_equal(ours, theirs)
