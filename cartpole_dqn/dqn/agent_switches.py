"""``AgentSwitches``: what :class:`~cartpole_dqn.dqn.agent.DQNAgent` and
:class:`~cartpole_dqn.dqn.qrdqn.QRDQNAgent` add to their SB3 parents in the same way.

Their three switches (``double_q``, ``fast``, ``torch_threads``), the fast path's optimizer
(:class:`~cartpole_dqn.dqn.fast.optim.FlatAdam` unless the user names one) and its fallback where
it cannot run, the replay buffer's wiring, ``learn`` under the chosen torch threads, and the
fast path's per-env-step hooks (``_on_step``'s target update, ``_store_transition``), which both
parents run alike on their own online and target networks. A mixin
placed before the SB3 class (``class DQNAgent(AgentSwitches, DQN)``), so each seam still calls
SB3's own through ``super()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.utils import polyak_update
from torch import nn

from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer
from cartpole_dqn.dqn.fast.optim import FlatAdam
from cartpole_dqn.dqn.fast.torch_private import fast_path_available
from cartpole_dqn.dqn.replay_wiring import anneal_priority_correction, setup_with_agent_discounts
from cartpole_dqn.dqn.threads import check_torch_threads, torch_threads

if TYPE_CHECKING:
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    _SB3Agent = OffPolicyAlgorithm
else:
    _SB3Agent = object


class AgentSwitches(_SB3Agent):
    """The switches and seams both plug-in agents share (see the module docstring).

    :param double_q: the Double target (the online net picks the next action, the target net
        values it; van Hasselt et al. 2016, arXiv:1509.06461)
    :param fast: the speed path (bitwise the same numbers); False runs SB3's own code, and so does
        an agent whose torch lacks a private API the path needs
    :param torch_threads: torch CPU threads while ``learn`` runs (then restored); None leaves
        torch's own setting alone
    """

    def __init__(
        self,
        *args: Any,
        double_q: bool = False,
        torch_threads: int | None = 1,
        fast: bool = True,
        **kwargs: Any,
    ) -> None:
        self.double_q = double_q
        self._target_pairs: tuple[list[th.Tensor], list[th.Tensor]] = ([], [])
        self._target_pairs_key: tuple[int, ...] = ()
        self.torch_threads = check_torch_threads(torch_threads)
        self.fast = fast and fast_path_available()
        policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
        if self.fast and "optimizer_class" not in policy_kwargs:
            policy_kwargs["optimizer_class"] = FlatAdam
            policy_kwargs["optimizer_kwargs"] = self._flat_adam_kwargs(policy_kwargs, kwargs)
        super().__init__(*args, **{**kwargs, "policy_kwargs": policy_kwargs})

    def _flat_adam_kwargs(
        self, policy_kwargs: dict[str, Any], agent_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """The optimizer_kwargs FlatAdam gets when the user named no optimizer_class: each agent's
        own, so the update stays bitwise its parent's."""
        raise NotImplementedError

    def _online_and_target(self) -> tuple[nn.Module, nn.Module]:
        """The online network and its target copy (``q_net`` or ``quantile_net``, and ``_target``)."""
        raise NotImplementedError

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_target_pairs", "_target_pairs_key"]

    def learn(self, *args: Any, **kwargs: Any) -> Any:
        """SB3's ``learn`` with ``torch_threads`` CPU threads (see :mod:`cartpole_dqn.dqn.threads`)."""
        with torch_threads(self.torch_threads):
            return super().learn(*args, **kwargs)

    @property
    def prioritized(self) -> bool:
        return isinstance(self.replay_buffer, PrioritizedReplayBuffer)

    def _setup_model(self) -> None:
        if self.fast and not fast_path_available():  # a model saved where the fast path ran, loaded here
            self.fast = False
        if not self.fast and self.policy_kwargs.get("optimizer_class") is FlatAdam:
            self.policy_kwargs = {**self.policy_kwargs, "optimizer_class": th.optim.Adam}
        setup_with_agent_discounts(self, super()._setup_model, windowed=self.fast)

    def _on_step(self) -> None:
        """SB3's ``_on_step`` (target update every ``target_update_interval`` env steps, epsilon
        schedule; DQN's and QRDQN's are the same but for the networks' names), with the target
        update as two foreach operations over cached parameter lists (bitwise SB3's per-parameter
        ``polyak_update``), plus PER's beta annealing. With ``fast=False``, SB3's own, plus the
        annealing."""
        if not self.fast:
            super()._on_step()
            anneal_priority_correction(self)
            return
        self._n_calls += 1  # type: ignore[attr-defined]  # DQN's and QRDQN's counter
        if self._n_calls % max(self.target_update_interval // self.n_envs, 1) == 0:  # type: ignore[attr-defined]
            online, target = self._target_update_pairs()
            with th.no_grad():
                th._foreach_mul_(target, 1 - self.tau)
                th._foreach_add_(target, online, alpha=self.tau)
            # GH #996, as SB3
            polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)  # type: ignore[attr-defined]
        self.exploration_rate = self.exploration_schedule(self._current_progress_remaining)  # type: ignore[attr-defined]
        self.logger.record("rollout/exploration_rate", self.exploration_rate)
        anneal_priority_correction(self)

    def _target_update_pairs(self) -> tuple[list[th.Tensor], list[th.Tensor]]:
        """The online and target parameters' tensors, listed once per pair of networks."""
        online_net, target_net = self._online_and_target()
        key = (id(online_net), id(target_net))
        if self._target_pairs_key != key:
            self._target_pairs = (
                [p.data for p in online_net.parameters()],
                [p.data for p in target_net.parameters()],
            )
            self._target_pairs_key = key
        online, target = self._target_pairs
        if online and online[0].data_ptr() != next(online_net.parameters()).data_ptr():  # storage replaced
            self._target_pairs_key = ()
            return self._target_update_pairs()
        return online, target

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """SB3's ``_store_transition`` for plain array observations, with an array copy in place of
        ``deepcopy`` (the same stored data)."""
        if not self.fast or self._vec_normalize_env is not None or not isinstance(new_obs, np.ndarray):
            super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
            return
        self._last_original_obs = self._last_obs
        next_obs = new_obs.copy()
        for env in np.flatnonzero(dones):
            terminal = infos[env].get("terminal_observation")
            if terminal is not None:
                next_obs[env] = terminal  # the VecEnv reset already: new_obs starts the next episode
        replay_buffer.add(self._last_original_obs, next_obs, buffer_action, reward, dones, infos)  # type: ignore[arg-type]
        self._last_obs = new_obs
