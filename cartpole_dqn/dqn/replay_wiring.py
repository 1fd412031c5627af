"""How our agents set up their replay buffer: the windowed buffer by default, and any n-step buffer
(prioritized included) with the agent's own ``n_steps`` and ``gamma``.

Shared by :class:`~cartpole_dqn.dqn.agent.DQNAgent` and :class:`~cartpole_dqn.dqn.qrdqn.QRDQNAgent`,
which call it from their ``_setup_model`` seam with their parent's ``_setup_model``.
"""

from __future__ import annotations

from collections.abc import Callable

from gymnasium import spaces
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer, WindowedReplayBuffer


def setup_with_agent_discounts(
    agent: OffPolicyAlgorithm, parent_setup: Callable[[], None], windowed: bool = True
) -> None:
    """Run ``parent_setup`` (SB3's ``_setup_model``) with the replay buffer wired to the agent.

    An n-step buffer computes the discounts the update multiplies with (gamma ** n, cut short at
    episode ends), for every n_envs and n_steps, so it must have the agent's n_steps and gamma.
    SB3 wires them only into a buffer it picks itself (and, after load(), warns that n_steps is
    ignored by the class it picked before save): hand them over here, keep that warning quiet.
    Without a buffer class given, :class:`WindowedReplayBuffer` stands in for the one SB3 would pick
    (the same samples, found with less work), except where it cannot: Dict observations and
    ``optimize_memory_usage`` (next observations shared with the following row) keep SB3's choice,
    and so does an agent built with ``fast=False`` (``windowed`` False).
    """
    windowed_fits = (
        windowed and not isinstance(agent.observation_space, spaces.Dict) and not agent.optimize_memory_usage
    )
    if agent.replay_buffer_class is None and windowed_fits:
        agent.replay_buffer_class = WindowedReplayBuffer
    cls = agent.replay_buffer_class
    if cls is None or not issubclass(cls, NStepReplayBuffer):
        parent_setup()
        return
    given = agent.replay_buffer_kwargs
    for key, ours in (("n_steps", agent.n_steps), ("gamma", agent.gamma)):
        if key in given and given[key] != ours:
            raise ValueError(
                f"replay_buffer_kwargs {key}={given[key]} differs from the agent's {key}={ours}: "
                "the buffer's discounts must be the agent's"
            )
    agent.replay_buffer_kwargs = {**given, "n_steps": agent.n_steps, "gamma": agent.gamma}
    n_steps, agent.n_steps = agent.n_steps, 1
    try:
        parent_setup()
    finally:
        agent.n_steps = n_steps


def anneal_priority_correction(agent: OffPolicyAlgorithm) -> None:
    """PER's beta, annealed from its initial value to 1 over the training budget (Schaul et al. 2016,
    arXiv:1511.05952): full importance-sampling correction by the end, where the estimates matter."""
    if isinstance(agent.replay_buffer, PrioritizedReplayBuffer):
        agent.replay_buffer.anneal_beta(1.0 - agent._current_progress_remaining)
