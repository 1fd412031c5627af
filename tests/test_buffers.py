from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import NStepReplayBuffer

from cartpole_dqn.buffers import PrioritizedReplayBuffer

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


def test_importance_weights_follow_the_formula() -> None:
    per = PrioritizedReplayBuffer(8, OBS, ACT, device="cpu", alpha=0.7, beta_initial=0.5)
    fill(per, 8, 1)
    per.update_priorities(np.arange(8), np.array([0.1, 0.5, 1.0, 2.0, 0.2, 3.0, 0.05, 1.5]))
    samples = per.sample(32)
    leaves = per.tree.values()
    probabilities = leaves[samples.indices] / leaves.sum()
    expected = (8 * probabilities) ** -0.5
    expected /= expected.max()
    np.testing.assert_allclose(samples.weights.numpy().ravel(), expected, rtol=1e-6)
    assert samples.weights.max().item() == pytest.approx(1.0)


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
