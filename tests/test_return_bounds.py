"""The remaining-return bounds an evaluation stops early on: sound on real episodes, and a bounded
evaluation decides exactly as the full 100-episode one (LunarLander: a bound from the lander's state)."""

from __future__ import annotations

import functools
import hashlib
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.box2d.lunar_lander import heuristic

from cartpole_dqn.run.evaluation import EvalResult, evaluate_greedy
from cartpole_dqn.run.return_bounds import (
    LunarLanderBound,
    StepRewardBound,
    lunar_lander_shaping,
    remaining_return_bound,
)
from tests.test_solve_protocol import protocol_evaluation

pytest.importorskip("Box2D")

LUNAR = "LunarLander-v3"
DISCRETE = SimpleNamespace(continuous=False)
DISCRETE.unwrapped = DISCRETE  # what heuristic() reads: env.unwrapped.continuous


class LanderPolicy:
    """Gymnasium's hand-written lander controller (averages well above 200), taking a random action
    instead with probability ``noise`` (noise 1: a random policy). The draw is a function of the
    observation, so the policy is deterministic however many episodes a batch holds."""

    def __init__(self, noise: float) -> None:
        self.noise = noise

    def predict(
        self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> Any:
        obs = np.atleast_2d(np.asarray(obs, dtype=np.float32))
        actions = np.empty(len(obs), dtype=np.int64)
        for i, row in enumerate(obs):
            draw = int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
            if (draw % 10_000) < self.noise * 10_000:
                actions[i] = (draw // 10_000) % 4
            else:
                actions[i] = heuristic(DISCRETE, row)
        return actions, None


class ConstantPolicy:
    """Always the same action (2: main engine, which burns fuel; 0: fall)."""

    def __init__(self, action: int) -> None:
        self.action = action

    def predict(
        self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> Any:
        return np.full(len(np.atleast_2d(obs)), self.action, dtype=np.int64), None


def play(policy: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One LunarLander episode: the observations it acted on and the rewards that followed each."""
    env = gym.make(LUNAR)
    try:
        obs, _ = env.reset(seed=seed)
        seen, rewards, done = [obs], [], False
        while not done:
            action = int(policy.predict(obs[None])[0][0])
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            seen.append(obs)
            done = terminated or truncated
    finally:
        env.close()
    return np.asarray(seen[:-1]), np.asarray(rewards)


POLICIES: dict[str, LanderPolicy | ConstantPolicy] = {
    "lander": LanderPolicy(0.0),
    "noisy lander": LanderPolicy(0.12),
    "random": LanderPolicy(1.0),
    "main engine on": ConstantPolicy(2),
    "fall": ConstantPolicy(0),
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_lunar_lander_bound_is_never_below_what_an_episode_still_earns(name: str) -> None:
    """At every step of real episodes (landings, crashes, fuel burnt to the time limit), the return
    that followed is at most the bound from that step's observation."""
    bound = LunarLanderBound()
    tightest = np.inf
    for seed in range(3):
        obs, rewards = play(POLICIES[name], seed)
        still_earned = np.cumsum(rewards[::-1])[::-1]  # the return from each observation on
        slack = bound.best_remaining(obs, 0) - still_earned
        assert slack.min() >= 0.0, f"{name}, seed {seed}: the bound is {slack.min():.3f} below the truth"
        tightest = min(tightest, float(slack.min()))
    if name == "lander":  # a landing comes within 100 of the bound: the +100 bonus term is needed
        assert tightest < 100.0


def test_lunar_lander_shaping_is_the_envs_own() -> None:
    """The potential computed from the observation equals what the env scores with (to float32
    rounding): each mid-episode reward plus fuel is the potential's difference."""
    env = gym.make(LUNAR)
    obs, _ = env.reset(seed=3)
    for _ in range(40):
        before = lunar_lander_shaping(obs[None])[0]
        obs, reward, terminated, _, _ = env.step(0)  # engines off: no fuel term
        if terminated:
            break
        assert reward == pytest.approx(lunar_lander_shaping(obs[None])[0] - before, abs=1e-3)
    env.close()


def test_bounds_are_chosen_by_env_family() -> None:
    assert isinstance(remaining_return_bound(LUNAR, 1000), LunarLanderBound)
    assert remaining_return_bound("CartPole-v1", 500) == StepRewardBound(1.0, 500)
    assert remaining_return_bound("MountainCar-v0", 200) == StepRewardBound(0.0, 200)
    assert remaining_return_bound("Pendulum-v1", 200) is None  # no known bound: every episode runs out


@functools.cache
def full_evaluation(name: str, seed: int) -> EvalResult:
    return evaluate_greedy(POLICIES[name], LUNAR, 100, seed, 1000)


CASES = [  # (policy, eval seed, threshold offset from its own mean; None: the env's 200)
    # mean 199.7 on seed 11: a pass just below its mean, a fail at 200, 0.3 above it
    *[("noisy lander", 11, offset) for offset in (-0.01, None)],
    *[("random", 12, offset) for offset in (-20.0, 0.0, None)],
    *[("main engine on", 13, offset) for offset in (-20.0, 0.0, None)],
]


@pytest.mark.parametrize(("name", "seed", "offset"), CASES)
def test_bounded_lunar_lander_evaluation_decides_as_the_full_one(
    name: str, seed: int, offset: float | None
) -> None:
    """With thresholds at, just around, and away from each policy's own 100-episode mean (None: the
    env's 200), the protocol says "solved" exactly when the full evaluation reaches the threshold."""
    full = full_evaluation(name, seed)
    threshold = 200.0 if offset is None else full.mean + offset
    callback = protocol_evaluation(POLICIES[name], threshold, seed, env_id=LUNAR)
    assert callback.state.solved == (full.mean >= threshold)
    record = callback.state.history[-1]
    if record.deciding:
        assert record.mean == pytest.approx(full.mean, abs=1e-9)
    else:  # stopped early: the curve's value is the full evaluation's first 10 episodes
        assert record.mean == pytest.approx(float(np.mean(full.returns[:10])), abs=1e-9)


def test_the_bound_stops_failing_lunar_lander_evaluations_early() -> None:
    """Against the env's 200, a random policy's and an engine-burning policy's evaluations stop."""
    for name, seed in (("random", 12), ("main engine on", 13)):
        callback = protocol_evaluation(POLICIES[name], 200.0, seed, env_id=LUNAR)
        assert callback.state.history[-1].deciding is False, name


def test_a_lunar_lander_evaluation_returns_each_seeded_episode_played_alone() -> None:
    """Evaluating steps only the live episodes of the sync vector env: each return is exactly that
    of the episode played alone in a fresh env reset with seed + i (as the vector env seeds them)."""
    result = evaluate_greedy(POLICIES["noisy lander"], LUNAR, 6, 40, 1000)
    alone = [
        float(np.cumsum(play(POLICIES["noisy lander"], 40 + i)[1])[-1]) for i in range(6)
    ]  # summed in order
    np.testing.assert_array_equal(result.returns, alone)
