"""The one place a :class:`RunConfig` becomes an SB3 agent (ours or stock); ``train``, ``tune`` and
``benchmark`` share it. It sits above the plug-ins, which know nothing of run configs."""

from __future__ import annotations

from typing import Any

from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from cartpole_dqn.config import RunConfig
from cartpole_dqn.dqn.agent import DQNAgent
from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer
from cartpole_dqn.dqn.networks import ACTIVATION_CLASSES
from cartpole_dqn.dqn.qrdqn import QRDQNAgent


def policy_kwargs(config: RunConfig) -> dict[str, Any]:
    """The SB3 ``policy_kwargs`` for ``config``'s network."""
    kwargs: dict[str, Any] = {
        "net_arch": list(config.net_arch),
        "activation_fn": ACTIVATION_CLASSES[config.activation],
    }
    if config.policy == "DuelingMlpPolicy":
        kwargs["stream_arch"] = list(config.dueling_stream_arch)
    if config.algorithm == "qrdqn":
        kwargs["n_quantiles"] = config.quantiles
    return kwargs


def agent_kwargs(config: RunConfig) -> dict[str, Any]:
    """The constructor arguments (SB3 ``DQN``'s, which sb3-contrib ``QRDQN`` shares) for ``config``.

    ``implementation: sb3`` builds stock SB3 ``DQN`` / sb3-contrib ``QRDQN`` (their default Adam),
    so a baseline config runs exactly what their users run; DQNAgent brings
    :class:`~cartpole_dqn.dqn.fast.optim.FlatAdam`, QRDQNAgent keeps QRDQN's Adam (eps 0.01 / batch size).
    """
    kwargs: dict[str, Any] = dict(
        learning_rate=config.learning_rate,
        buffer_size=config.buffer_size,
        learning_starts=config.learning_starts,
        batch_size=config.batch_size,
        tau=config.tau,
        gamma=config.gamma,
        train_freq=config.train_freq,
        gradient_steps=config.gradient_steps,
        target_update_interval=config.target_update_interval,
        exploration_fraction=config.exploration_fraction,
        exploration_initial_eps=config.exploration_initial_eps,
        exploration_final_eps=config.exploration_final_eps,
        n_steps=config.n_steps,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs=policy_kwargs(config),
        seed=config.seed,
        device=config.device,
    )
    if config.prioritized_replay:
        kwargs["replay_buffer_class"] = PrioritizedReplayBuffer
        kwargs["replay_buffer_kwargs"] = dict(
            alpha=config.per_alpha, beta_initial=config.per_beta_initial, eps=config.per_eps
        )
    return kwargs


AGENT_CLASSES: dict[tuple[str, str], type[OffPolicyAlgorithm]] = {
    ("dqn", "cartpole_dqn"): DQNAgent,
    ("dqn", "sb3"): DQN,
    ("qrdqn", "cartpole_dqn"): QRDQNAgent,
    ("qrdqn", "sb3"): QRDQN,
}


def agent_class(config: RunConfig) -> type[OffPolicyAlgorithm]:
    """The agent class for ``config``'s algorithm: ours (:class:`DQNAgent`, :class:`QRDQNAgent`), or
    for ``implementation: sb3`` the stock one (SB3 ``DQN``, sb3-contrib ``QRDQN``: baselines)."""
    return AGENT_CLASSES[config.algorithm, config.implementation]


def build_agent(config: RunConfig, env: VecEnv, verbose: int = 0) -> OffPolicyAlgorithm:
    """A fresh agent for ``config`` on ``env``."""
    kwargs = agent_kwargs(config)
    cls = agent_class(config)
    if cls in (DQNAgent, QRDQNAgent):
        kwargs["double_q"] = config.double_q
        kwargs["torch_threads"] = config.torch_threads
    return cls(config.policy, env, verbose=verbose, **kwargs)
