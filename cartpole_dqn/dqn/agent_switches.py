"""``AgentSwitches``: what :class:`~cartpole_dqn.dqn.agent.DQNAgent` and
:class:`~cartpole_dqn.dqn.qrdqn.QRDQNAgent` add to their SB3 parents in the same way.

Their three switches (``double_q``, ``fast``, ``torch_threads``), the fast path's optimizer
(:class:`~cartpole_dqn.dqn.fast.optim.FlatAdam` unless the user names one) and its fallback where
it cannot run, the replay buffer's wiring, and ``learn`` under the chosen torch threads. A mixin
placed before the SB3 class (``class DQNAgent(AgentSwitches, DQN)``), so each seam still calls
SB3's own through ``super()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch as th

from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer
from cartpole_dqn.dqn.fast.optim import FlatAdam
from cartpole_dqn.dqn.fast.torch_private import fast_path_available
from cartpole_dqn.dqn.replay_wiring import setup_with_agent_discounts
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
