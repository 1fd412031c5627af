"""The speed code behind its switch: ``fast=False`` runs SB3's own code and trains bit for bit as the
fast path does, and a torch without one of the private APIs the fast path needs falls back to the
plain path with one warning (tested by hiding the API)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch as th
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.env_util import make_vec_env

from cartpole_dqn import DQNAgent, PrioritizedReplayBuffer, QRDQNAgent
from cartpole_dqn.dqn.fast import torch_private
from cartpole_dqn.dqn.fast.optim import FlatAdam

SMALL: dict[str, Any] = dict(learning_starts=100, train_freq=4, gradient_steps=2, batch_size=32, seed=3)


def trained(fast: bool, steps: int = 400, **kwargs: Any) -> DQNAgent:
    env = make_vec_env("CartPole-v1", n_envs=1, seed=3)
    agent = DQNAgent("MlpPolicy", env, fast=fast, **{**SMALL, **kwargs})
    agent.learn(steps)
    return agent


@pytest.mark.parametrize(
    "plugins",
    [
        {},
        {"double_q": True, "n_steps": 3},
        {"replay_buffer_class": PrioritizedReplayBuffer},
        {"replay_buffer_class": PrioritizedReplayBuffer, "batch_size": 48},  # 1 / 48 is not exact
    ],
    ids=["vanilla", "double-nstep", "per", "per-batch48"],
)
def test_the_fast_and_the_plain_path_train_bit_for_bit_alike(plugins: dict[str, Any]) -> None:
    """The fast path (explicit passes, FlatAdam's fused kernel, windowed replay, lean hooks) against
    SB3's own code with torch's fused Adam: the same parameters to the last bit."""
    fast = trained(True, **plugins)
    plain = trained(False, policy_kwargs={"optimizer_kwargs": {"fused": True}}, **plugins)
    assert isinstance(fast.policy.optimizer, FlatAdam) and type(plain.policy.optimizer) is th.optim.Adam
    for a, b in zip(fast.q_net.parameters(), plain.q_net.parameters(), strict=True):
        assert th.equal(a.detach(), b.detach())


def test_fast_false_is_sb3s_own_code() -> None:
    plain = trained(False, steps=200)
    assert type(plain.replay_buffer) is ReplayBuffer and plain._explicit_networks() is None
    nstep = trained(False, steps=200, n_steps=3)
    assert type(nstep.replay_buffer) is NStepReplayBuffer
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    qr = QRDQNAgent("MlpPolicy", env, fast=False, **SMALL)
    qr.learn(200)
    assert type(qr.replay_buffer) is ReplayBuffer


def test_a_missing_private_torch_api_falls_back_to_the_plain_path_with_one_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert torch_private.missing_private_apis() == []  # this torch has them all
    monkeypatch.delattr(th, "_fused_adam_")
    torch_private._warned.cache_clear()
    assert torch_private.missing_private_apis() == ["torch._fused_adam_"]
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = DQNAgent("MlpPolicy", env, **SMALL)
        second = DQNAgent("MlpPolicy", env, replay_buffer_class=PrioritizedReplayBuffer, **SMALL)
        first.learn(300)
        second.learn(300)
    ours = [w for w in caught if "cartpole_dqn: torch" in str(w.message)]
    assert len(ours) == 1 and "torch._fused_adam_" in str(ours[0].message)
    assert not first.fast and not second.fast
    assert type(first.policy.optimizer) is th.optim.Adam and first.num_timesteps == 300
    torch_private._warned.cache_clear()


@pytest.mark.parametrize(  # plug-ins off: stock QRDQN bit for bit (tests/test_qrdqn.py)
    "plugins",
    [{"double_q": True, "n_steps": 3}, {"replay_buffer_class": PrioritizedReplayBuffer}],
    ids=["double-nstep", "per"],
)
def test_qrdqn_fast_and_plain_paths_train_bit_for_bit_alike(plugins: dict[str, Any]) -> None:
    """QR-DQN's fast path (explicit quantile-network passes, FlatAdam's fused kernel, windowed
    replay, lean hooks) against sb3-contrib's own code with its plug-ins and torch's fused Adam (with
    QRDQN's eps): the same parameters to the last bit."""
    fused_adam = {"optimizer_class": th.optim.Adam, "optimizer_kwargs": {"eps": 0.01 / 32, "fused": True}}
    agents = []
    for fast in (True, False):
        env = make_vec_env("CartPole-v1", n_envs=1, seed=3)
        optimizer = {} if fast else {"policy_kwargs": fused_adam}
        agent = QRDQNAgent("MlpPolicy", env, fast=fast, max_grad_norm=10.0, **SMALL, **plugins, **optimizer)
        agent.learn(400)
        agents.append(agent)
    fast_agent, plain = agents
    assert fast_agent._explicit_pair.nets is not None and plain._explicit_networks() is None
    assert isinstance(fast_agent.policy.optimizer, FlatAdam) and type(plain.policy.optimizer) is th.optim.Adam
    for a, b in zip(fast_agent.quantile_net.parameters(), plain.quantile_net.parameters(), strict=True):
        assert th.equal(a.detach(), b.detach())
