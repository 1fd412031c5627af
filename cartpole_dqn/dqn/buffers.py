"""Replay buffers: SB3's, with n-step windows kept as transitions arrive, and prioritized replay.

:class:`WindowedReplayBuffer` is SB3's ``NStepReplayBuffer`` (and, with ``n_steps=1``, its plain
``ReplayBuffer``) sampling the same transitions bit for bit, for less work per batch: SB3 finds each
sampled n-step window's end (the first ``done`` or time-out, or the newest transition) by gathering
and scanning ``n`` flags per sample; here each row's window length is updated when a transition
arrives, so sampling gathers it and then runs SB3's own float32 expression for the returns.
:class:`PrioritizedReplayBuffer` adds proportional prioritized sampling on top (Schaul et al. 2016,
arXiv:1511.05952).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from cartpole_dqn.dqn.sumtree import SumTree


class WindowedReplayBuffer(NStepReplayBuffer):
    """SB3's n-step (or, with ``n_steps=1``, one-step) replay buffer, with its windows kept up to date.

    ``window_lengths[row, env]`` is how many transitions the n-step window starting there spans:
    up to and including the first that ended an episode (done or time-out), at most ``n_steps``. A
    window still growing holds ``n_steps``; at sampling time it is cut at the newest transition, as
    SB3 does by treating that one as a time-out. Samples, random draws included, are SB3's own.

    :param n_steps: n-step returns (1: SB3's plain ``ReplayBuffer`` samples, ``discounts`` None)
    :param gamma: discount of the n-step returns
    Other parameters are SB3's ``ReplayBuffer``'s; Dict observations and ``optimize_memory_usage``
    are not supported.
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
        n_steps: int = 1,
        gamma: float = 0.99,
    ) -> None:
        name = type(self).__name__
        if isinstance(observation_space, spaces.Dict):
            raise ValueError(
                f"{name} does not support Dict observation spaces (SB3's n-step sampling does not "
                "either); flatten them, e.g. with gymnasium.wrappers.FlattenObservation"
            )
        if optimize_memory_usage:
            raise NotImplementedError(
                f"{name} does not support optimize_memory_usage=True: n-step windows and per-slot "
                "priorities need each transition's own next observation"
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
        self.window_lengths = np.full((self.buffer_size, self.n_envs), n_steps, dtype=np.int64)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "window_lengths" not in state:  # pickled by 0.1.0, before windows were kept
            self.window_lengths = np.full((self.buffer_size, self.n_envs), self.n_steps, dtype=np.int64)
            self.recompute_windows()

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        row = self.pos
        super().add(obs, next_obs, action, reward, done, infos)
        n = self.n_steps
        ended = (self.dones[row] != 0) | (self.timeouts[row] != 0)
        self.window_lengths[row] = np.where(ended, 1, n)
        if not ended.any():
            return
        for back in range(1, min(n, self.buffer_size)):  # windows it closes: started up to n - 1 rows ago
            if row < back and not self.full:
                break
            lengths = self.window_lengths[(row - back) % self.buffer_size]
            lengths[ended & (lengths == n)] = back + 1  # n: still growing (nothing ended it yet)

    def recompute_windows(self) -> None:
        """Derive every window from the stored done and time-out flags (after changing them)."""
        n, size = self.n_steps, self.buffer_size
        ended = (self.dones != 0) | (self.timeouts != 0)
        newest = (self.pos - 1) % size
        stored = size if self.full else self.pos
        rows = np.arange(size)
        lengths = np.full((size, self.n_envs), n, dtype=np.int64)
        open_ = np.ones((size, self.n_envs), dtype=bool)
        for offset in range(n):
            at = (rows + offset) % size
            # rows past the newest transition do not belong to the window (yet)
            beyond = ((at - rows) % size > (newest - rows) % size) | (rows >= stored)
            closes = open_ & ended[at] & ~beyond[:, None]
            lengths[closes] = offset + 1
            open_ &= ~closes & ~beyond[:, None]
        self.window_lengths = lengths

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        # SB3 draws the env of each sample like this, in ReplayBuffer and NStepReplayBuffer alike.
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        return self._samples_at(batch_inds, env_indices, env)

    def _samples_at(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
    ) -> ReplayBufferSamples:
        """SB3's samples at the given (row, env) pairs, bit for bit."""
        obs = self._normalize_obs(self.observations[batch_inds, env_indices, :], env)
        actions = self.actions[batch_inds, env_indices, :]
        if self.n_steps == 1:  # ReplayBuffer._get_samples
            next_obs = self._normalize_obs(self.next_observations[batch_inds, env_indices, :], env)
            dones = (
                self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])
            ).reshape(-1, 1)
            rewards = self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env)
            return ReplayBufferSamples(*map(self._tensor, (obs, actions, next_obs, dones, rewards)))
        # NStepReplayBuffer._get_samples, with each window's length looked up instead of searched for
        steps = np.arange(self.n_steps).reshape(1, -1)
        up_to_newest = (self.pos - 1 - batch_inds) % self.buffer_size
        lengths = np.minimum(self.window_lengths[batch_inds, env_indices], up_to_newest + 1)
        indices = (batch_inds[:, None] + steps) % self.buffer_size
        rewards_seq = self._normalize_reward(self.rewards[indices, env_indices[:, None]], env)
        mask = steps < lengths[:, None]
        target_q_discounts = self.gamma ** mask.sum(axis=1, keepdims=True).astype(np.float32)
        discounts = self.gamma ** np.arange(self.n_steps, dtype=np.float32).reshape(1, -1)
        n_step_returns = (rewards_seq * discounts * mask).sum(axis=1, keepdims=True)
        last_indices = (batch_inds + lengths - 1) % self.buffer_size
        next_obs = self._normalize_obs(self.next_observations[last_indices, env_indices], env)
        next_dones = self.dones[last_indices, env_indices][:, None].astype(np.float32)
        next_timeouts = self.timeouts[last_indices, env_indices][:, None].astype(np.float32)
        final_dones = next_dones * (1.0 - next_timeouts)  # the newest transition: not done, or done
        return ReplayBufferSamples(
            *map(self._tensor, (obs, actions, next_obs, final_dones, n_step_returns, target_q_discounts))
        )

    def _tensor(self, array: np.ndarray) -> th.Tensor:
        """A fresh array's memory as a tensor (SB3's ``to_torch`` copies it once more)."""
        return th.as_tensor(array, device=self.device)


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


class PrioritizedReplayBuffer(WindowedReplayBuffer):
    """Replay buffer that samples transition i with probability p_i^alpha / sum_k p_k^alpha.

    One sum tree covers every (row, env) slot, so ``n_envs > 1`` works: slot = row * n_envs + env.
    New transitions get the largest priority seen so far, so each is replayed at least once soon.
    Their tree writes wait until the tree is next read (a sample, a priority update, ``tree``):
    a rollout's transitions then cost one batched update instead of one tree walk each, and the
    tree anyone reads is the one eager writes would have built (the largest priority only
    changes in :meth:`update_priorities`, which writes the waiting ones first).

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
        self._tree = SumTree(self.buffer_size * self.n_envs)
        self._waiting: list[np.ndarray] = []  # slots added since the tree was last written

    @property
    def tree(self) -> SumTree:
        """The sum tree over every slot, with the transitions added so far written in."""
        if self._waiting:
            slots = np.concatenate(self._waiting)
            self._waiting.clear()
            self._tree.update(slots, self.max_priority**self.alpha)
        return self._tree

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tree"] = self.tree  # written up to date
        state["_waiting"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "tree" in self.__dict__:  # pickled before tree writes waited
            self._tree = self.__dict__.pop("tree")
        if "_waiting" not in self.__dict__:
            self._waiting = []

    def anneal_beta(self, progress: float) -> None:
        """Move beta linearly from ``beta_initial`` (progress 0) to 1 (progress 1)."""
        progress = min(max(progress, 0.0), 1.0)
        self.beta = self.beta_initial + (1.0 - self.beta_initial) * progress

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "_tree"):
            self._tree = SumTree(self.buffer_size * self.n_envs)
            self._waiting = []
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
        self._waiting.append(slots)

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> PrioritizedReplayBufferSamples:  # type: ignore[override]
        """Draw a stratified prioritized batch, with IS weights normalized by their max."""
        slots, probabilities = self.tree.sample_proportional(batch_size)
        if self.n_envs == 1:
            rows, env_indices = slots, np.zeros_like(slots)
        else:
            rows, env_indices = np.divmod(slots, self.n_envs)
        samples = self._samples_at(rows, env_indices, env)
        n_stored = self.size() * self.n_envs
        weights = (n_stored * probabilities) ** (-self.beta)
        weights /= weights.max()
        return PrioritizedReplayBufferSamples(
            *samples,
            weights=self._tensor(weights.astype(np.float32).reshape(-1, 1)),
            indices=slots,
        )

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set the priorities of sampled slots to |TD error| + eps."""
        tree = self.tree  # the waiting transitions are written at the largest priority before it moves
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)).ravel() + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        tree.update(indices, priorities**self.alpha)
