from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env

from cartpole_dqn import DQNAgent, DuelingDQNPolicy, PrioritizedReplayBuffer

SMALL: dict[str, Any] = dict(
    learning_starts=100,
    train_freq=4,
    gradient_steps=2,
    target_update_interval=50,
    batch_size=32,
    policy_kwargs={"net_arch": [32, 32]},
    seed=3,
    device="cpu",
)


def parameters(model: DQN) -> list[th.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


@pytest.mark.parametrize("n_steps", [1, 3])
def test_vanilla_update_is_exactly_sb3s(n_steps: int) -> None:
    stock = DQN("MlpPolicy", make_vec_env("CartPole-v1", seed=3), n_steps=n_steps, **SMALL).learn(600)
    ours = DQNAgent("MlpPolicy", make_vec_env("CartPole-v1", seed=3), n_steps=n_steps, **SMALL).learn(600)
    assert ours._n_updates == stock._n_updates > 0
    for a, b in zip(parameters(stock), parameters(ours), strict=True):
        assert th.equal(a, b)


def test_double_q_changes_the_update() -> None:
    """The control for the test above: that comparison can fail."""
    stock = DQN("MlpPolicy", make_vec_env("CartPole-v1", seed=3), **SMALL).learn(600)
    double = DQNAgent("MlpPolicy", make_vec_env("CartPole-v1", seed=3), double_q=True, **SMALL).learn(600)
    assert not all(th.equal(a, b) for a, b in zip(parameters(stock), parameters(double), strict=True))


def full_agent(n_envs: int = 1) -> DQNAgent:
    return DQNAgent(
        "DuelingMlpPolicy",
        make_vec_env("CartPole-v1", n_envs=n_envs, seed=5),
        double_q=True,
        n_steps=3,
        replay_buffer_class=PrioritizedReplayBuffer,
        replay_buffer_kwargs={"alpha": 0.5, "beta_initial": 0.3},
        **{**SMALL, "policy_kwargs": {"net_arch": [32], "stream_arch": [16]}},
    )


def test_plugins_train_together_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent = full_agent().learn(800)
    buffer = agent.replay_buffer
    assert isinstance(buffer, PrioritizedReplayBuffer)
    assert isinstance(agent.policy, DuelingDQNPolicy)
    assert buffer.n_steps == 3 and buffer.gamma == agent.gamma
    assert 0.3 < buffer.beta <= 1.0  # annealed from beta_initial
    leaves = buffer.tree.values()[: buffer.size()]
    assert len(np.unique(leaves)) > 10  # priorities came from TD errors, not all the max priority


def test_multi_env_training_with_per() -> None:
    agent = full_agent(n_envs=4).learn(800)
    assert agent.num_timesteps >= 800
    assert agent.replay_buffer is not None and agent.replay_buffer.n_envs == 4


def test_save_load_round_trip_in_process_and_in_a_fresh_process(tmp_path: Path) -> None:
    agent = full_agent().learn(400)
    path = tmp_path / "model.zip"
    agent.save(path)
    obs = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    expected = agent.predict(obs, deterministic=True)[0]

    loaded = DQNAgent.load(path, device="cpu")
    assert loaded.double_q is True
    assert loaded.replay_buffer_class is PrioritizedReplayBuffer
    assert isinstance(loaded.policy, DuelingDQNPolicy) and loaded.policy.stream_arch == [16]
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)

    np.save(tmp_path / "obs.npy", obs)
    code = (
        "import json, numpy as np; from cartpole_dqn import DQNAgent; "
        f"m = DQNAgent.load(r'{path}', device='cpu'); obs = np.load(r'{tmp_path / 'obs.npy'}'); "
        "print(json.dumps({'actions': m.predict(obs, deterministic=True)[0].tolist(), "
        "'double_q': m.double_q, 'policy': type(m.policy).__name__}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fresh = json.loads(out.stdout.strip().splitlines()[-1])
    assert fresh["actions"] == expected.tolist()
    assert fresh["double_q"] is True and fresh["policy"] == "DuelingDQNPolicy"


def test_loading_an_nstep_model_does_not_warn(tmp_path: Path) -> None:
    DQNAgent("MlpPolicy", make_vec_env("CartPole-v1", seed=1), n_steps=3, **SMALL).save(tmp_path / "m.zip")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = DQNAgent.load(tmp_path / "m.zip", device="cpu")
    assert loaded.n_steps == 3


def test_the_baseline_implementation_is_stock_sb3() -> None:
    from cartpole_dqn.config import RunConfig
    from cartpole_dqn.factory import build_agent

    env = make_vec_env("CartPole-v1", seed=0)
    stock = build_agent(RunConfig(implementation="sb3", policy="MlpPolicy", net_arch=[8]), env)
    ours = build_agent(RunConfig(net_arch=[8]), env)
    assert type(stock) is DQN and type(ours) is DQNAgent
    assert "fused" not in stock.policy.optimizer.defaults or not stock.policy.optimizer.defaults["fused"]
