"""A drop-in stays a drop-in: with no plug-in switched on, our agents train exactly as stock SB3's
(and sb3-contrib's) on every input stock accepts, whatever observation space, optimizer or buffer
option the user picks."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env
from torch import nn

from cartpole_dqn import DQNAgent, QRDQNAgent
from tests.test_agent import flushing_denormals, parameters

COMMON: dict[str, Any] = dict(
    learning_starts=60,
    train_freq=4,
    gradient_steps=2,
    target_update_interval=40,
    batch_size=16,
    seed=5,
    device="cpu",
)


class ImageObsEnv(gym.Env[np.ndarray, int]):
    """uint8 image observations, which SB3's ``preprocess_obs`` scales by 1/255 before any network."""

    observation_space = spaces.Box(0, 255, (1, 6, 6), np.uint8)
    action_space = spaces.Discrete(3)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._obs = self.np_random.integers(0, 256, (1, 6, 6), dtype=np.uint8)
        return self._obs, {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(action == int(self._obs.mean() // 86))
        self._t += 1
        self._obs = self.np_random.integers(0, 256, (1, 6, 6), dtype=np.uint8)
        return self._obs, reward, False, self._t >= 25, {}


def env(kind: str) -> Any:
    if kind == "image":
        return make_vec_env(ImageObsEnv, seed=5)
    if kind == "discrete-obs":
        return make_vec_env("FrozenLake-v1", seed=5)  # Discrete(16) observations, one-hot encoded by SB3
    return make_vec_env("CartPole-v1", seed=5)


def assert_same_training(
    stock_class: Any, ours_class: Any, kind: str, steps: int = 400, **kwargs: Any
) -> Any:
    """Train stock, then ours (in that order: each constructor reseeds the global random streams),
    on the same env and arguments; the parameters must be equal bit for bit. Returns ours."""
    stock = stock_class("MlpPolicy", env(kind), **kwargs)
    if ours_class is DQNAgent:  # its update flushes denormals; compare like with like
        stock.train = flushing_denormals(stock.train)
    stock.learn(steps)
    ours = ours_class("MlpPolicy", env(kind), **kwargs).learn(steps)
    assert ours._n_updates == stock._n_updates > 0
    for a, b in zip(parameters(stock), parameters(ours), strict=True):
        assert th.equal(a, b)
    assert stock.replay_buffer is not None and ours.replay_buffer is not None
    np.testing.assert_array_equal(ours.replay_buffer.actions, stock.replay_buffer.actions)
    return ours


@pytest.mark.parametrize("kind", ["image", "discrete-obs"])
def test_observations_go_through_sb3s_preprocessing_when_training_and_acting(kind: str) -> None:
    """A uint8 image is scaled by 1/255 and a Discrete observation one-hot encoded, as SB3's own
    networks do, in the update, in the epsilon-greedy step and in ``predict``."""
    adam = {"optimizer_kwargs": {"fused": False}}
    assert_same_training(DQN, DQNAgent, kind, policy_kwargs={"net_arch": [16], **adam}, **COMMON)


def test_the_explicit_forward_is_only_used_where_preprocessing_is_the_identity() -> None:
    image = DQNAgent("MlpPolicy", env("image"), **COMMON)
    plain = DQNAgent("MlpPolicy", env("cartpole"), **COMMON)
    assert image._explicit_networks() is None
    assert plain._explicit_networks() is not None


def test_gradient_clipping_applies_with_a_torch_optimizer_on_an_autograd_network() -> None:
    """A net the explicit passes do not know (Hardtanh) and torch's own Adam: the update is autograd's,
    and the gradient norm is clipped as stock SB3 clips it (a tiny max_grad_norm makes it matter)."""
    kwargs: dict[str, Any] = {
        **COMMON,
        "max_grad_norm": 1e-3,
        "policy_kwargs": {
            "net_arch": [16, 16],
            "activation_fn": nn.Hardtanh,
            "optimizer_class": th.optim.Adam,
        },
    }
    ours = assert_same_training(DQN, DQNAgent, "cartpole", **kwargs)
    assert ours._explicit_networks() is None


@pytest.mark.parametrize("algorithm", ["dqn", "qrdqn"])
def test_optimize_memory_usage_trains_as_stock_does(algorithm: str) -> None:
    """Stock SB3 accepts ``optimize_memory_usage=True`` (without time-out handling); so do we, with
    SB3's own buffer in place of the windowed one that cannot share next observations."""
    kwargs: dict[str, Any] = {
        **COMMON,
        "optimize_memory_usage": True,
        "replay_buffer_kwargs": {"handle_timeout_termination": False},
        "policy_kwargs": {"net_arch": [16]},
    }
    if algorithm == "dqn":
        kwargs["policy_kwargs"]["optimizer_kwargs"] = {"fused": False}
        ours = assert_same_training(DQN, DQNAgent, "cartpole", **kwargs)
    else:
        kwargs["policy_kwargs"]["n_quantiles"] = 5
        ours = assert_same_training(QRDQN, QRDQNAgent, "cartpole", **kwargs)
    assert type(ours.replay_buffer).__name__ == "ReplayBuffer"


# --- the library learns with the CLI's thread count ---


class ThreadsSeen:
    """An SB3 callback that records torch's CPU thread count while ``learn`` runs."""

    def __new__(cls) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        class _Seen(BaseCallback):
            def __init__(self) -> None:
                super().__init__()
                self.threads: set[int] = set()

            def _on_step(self) -> bool:
                self.threads.add(th.get_num_threads())
                return True

        return _Seen()


@pytest.mark.parametrize("cls", [DQNAgent, QRDQNAgent])
def test_agents_learn_with_one_torch_thread_by_default_and_restore_the_callers(cls: Any) -> None:
    """The CLI trains with one thread (fastest for small MLPs, and not starved on a busy machine);
    a Python script gets the same by default, and its own setting back afterwards."""
    previous = th.get_num_threads()
    th.set_num_threads(2)
    try:
        env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
        seen = ThreadsSeen()
        cls("MlpPolicy", env, **{**COMMON, "learning_starts": 10}).learn(40, callback=seen)
        assert seen.threads == {1} and th.get_num_threads() == 2
        untouched = ThreadsSeen()
        cls("MlpPolicy", env, torch_threads=None, **COMMON).learn(20, callback=untouched)
        assert untouched.threads == {2}
        with pytest.raises(ValueError, match="torch_threads must be None or an integer >= 1, got 0"):
            cls("MlpPolicy", env, torch_threads=0, **COMMON)
    finally:
        th.set_num_threads(previous)


def test_torch_threads_is_saved_with_the_agent(tmp_path: Any) -> None:
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    DQNAgent("MlpPolicy", env, torch_threads=None, **COMMON).save(tmp_path / "agent.zip")
    assert DQNAgent.load(tmp_path / "agent.zip").torch_threads is None
