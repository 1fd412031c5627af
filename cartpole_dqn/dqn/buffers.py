"""Proportional prioritized replay as an SB3 replay buffer (Schaul et al. 2016, arXiv:1511.05952).

It subclasses SB3's ``NStepReplayBuffer`` (itself a ``ReplayBuffer``), so storage, ``add`` and the
n-step return computation are SB3's own; only *which* transitions are drawn changes. With
``n_steps=1`` the samples are plain one-step transitions.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from cartpole_dqn.dqn.sumtree import SumTree

_PER_ENV_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


class PrioritizedReplayBufferSamples(NamedTuple):
    """SB3's ``ReplayBufferSamples`` fields plus importance-sampling ``weights`` and tree ``indices``."""

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None
    weights: th.Tensor
    indices: np.ndarray


class PrioritizedReplayBuffer(NStepReplayBuffer):
    """Replay buffer that samples transition i with probability p_i^alpha / sum_k p_k^alpha.

    One sum tree covers every (row, env) slot, so ``n_envs > 1`` works: slot = row * n_envs + env.
    New transitions get the largest priority seen so far, so each is replayed at least once soon.

    :param buffer_size: Max number of transitions (over all envs)
    :param observation_space: Observation space
    :param action_space: Action space
    :param device: PyTorch device
    :param n_envs: Number of parallel environments
    :param optimize_memory_usage: Not supported (SB3's n-step buffer refuses it)
    :param handle_timeout_termination: Treat time-limit truncation as non-terminal (SB3 issue #284)
    :param alpha: Priority exponent: 0 is uniform sampling, 1 fully proportional
    :param beta_initial: Importance-sampling exponent at the start; :meth:`anneal_beta` moves it to 1
    :param eps: Added to |TD error| so that no transition gets zero probability
    :param n_steps: n-step returns, computed by SB3's ``NStepReplayBuffer`` logic
    :param gamma: Discount used for the n-step returns
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        alpha: float = 0.6,
        beta_initial: float = 0.4,
        eps: float = 1e-6,
        n_steps: int = 1,
        gamma: float = 0.99,
    ) -> None:
        if isinstance(observation_space, spaces.Dict):
            raise ValueError(
                "PrioritizedReplayBuffer does not support Dict observation spaces (SB3's n-step sampling "
                "does not either); flatten them, e.g. with gymnasium.wrappers.FlattenObservation"
            )
        if optimize_memory_usage:
            raise NotImplementedError(
                "PrioritizedReplayBuffer does not support optimize_memory_usage=True: n-step windows and "
                "per-slot priorities need each transition's own next observation"
            )
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
            n_steps=n_steps,
            gamma=gamma,
        )
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if not 0 <= beta_initial <= 1:
            raise ValueError(f"beta_initial must be in [0, 1], got {beta_initial}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.alpha = alpha
        self.beta_initial = beta_initial
        self.beta = beta_initial
        self.eps = eps
        self.max_priority = 1.0
        self.tree = SumTree(self.buffer_size * self.n_envs)

    def anneal_beta(self, progress: float) -> None:
        """Move beta linearly from ``beta_initial`` (progress 0) to 1 (progress 1)."""
        progress = min(max(progress, 0.0), 1.0)
        self.beta = self.beta_initial + (1.0 - self.beta_initial) * progress

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "tree"):
            self.tree = SumTree(self.buffer_size * self.n_envs)
            self.max_priority = 1.0

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        slots = self.pos * self.n_envs + np.arange(self.n_envs)
        super().add(obs, next_obs, action, reward, done, infos)
        self.tree.update(slots, self.max_priority**self.alpha)

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> PrioritizedReplayBufferSamples:  # type: ignore[override]
        """Draw a stratified prioritized batch, with IS weights normalized by their max."""
        slots = self.tree.sample_stratified(batch_size)
        rows, env_indices = np.divmod(slots, self.n_envs)
        samples = self._samples_at(rows, env_indices, env)
        probabilities = self.tree[slots] / self.tree.total
        n_stored = self.size() * self.n_envs
        weights = (n_stored * probabilities) ** (-self.beta)
        weights /= weights.max()
        return PrioritizedReplayBufferSamples(
            *samples,
            weights=self.to_torch(weights.astype(np.float32).reshape(-1, 1)),
            indices=slots,
        )

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set the priorities of sampled slots to |TD error| + eps."""
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)).ravel() + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(indices, priorities**self.alpha)

    def _samples_at(
        self, rows: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
    ) -> ReplayBufferSamples:
        """SB3's n-step samples at the given (row, env) pairs.

        SB3's ``_get_samples`` picks the env of each row at random; to make it use ours, each env's
        column is presented to it as a one-env buffer (numpy views, nothing copied).
        """
        if self.n_envs == 1:
            if self.n_steps == 1:  # SB3's plain one-step sampler: same transitions, less work
                return ReplayBuffer._get_samples(self, rows, env)
            return super()._get_samples(rows, env)
        order = np.argsort(env_indices, kind="stable")
        parts: list[ReplayBufferSamples] = []
        for e in np.unique(env_indices):
            column = copy.copy(self)
            for name in _PER_ENV_ARRAYS:
                setattr(column, name, getattr(self, name)[:, e : e + 1])
            column.n_envs = 1
            parts.append(NStepReplayBuffer._get_samples(column, rows[env_indices == e], env))
        inverse = th.as_tensor(np.argsort(order), device=self.device)
        fields = [
            None if values[0] is None else th.cat(values)[inverse] for values in zip(*parts, strict=True)
        ]
        return ReplayBufferSamples(*fields)  # type: ignore[arg-type]
