"""Upper bounds on the return an unfinished evaluation episode can still earn.

An evaluation may stop once its mean can no longer reach the threshold (:class:`PassBound` in
``run.evaluation``); that needs, for every running episode, a number its remaining return can never
exceed. Two kinds are known:

- a per-step bound: CartPole pays at most +1 a step, Acrobot and MountainCar at most 0, so an
  episode ``t`` steps in can earn at most ``max_step_reward * (max_episode_steps - t)``;
- LunarLander's reward is a potential difference (Ng, Harada & Russell 1999, "Policy invariance
  under reward transformations") minus fuel, so what remains depends on where the lander is:
  :class:`LunarLanderBound`.

A bound must never be below what an episode really earns: a stop then never changes a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import gymnasium as gym
import numpy as np


class RemainingReturnBound(Protocol):
    """Per running episode, the most its remaining return can be."""

    def best_remaining(self, obs: np.ndarray, steps_done: int) -> np.ndarray:
        """``obs``: the running episodes' current observations (one row each); ``steps_done``: steps
        every episode of the batch has taken (they all started together)."""
        ...


@dataclass(frozen=True)
class StepRewardBound:
    """Each step pays at most ``max_step_reward`` and an episode lasts at most ``max_episode_steps``."""

    max_step_reward: float
    max_episode_steps: int

    def best_remaining(self, obs: np.ndarray, steps_done: int) -> np.ndarray:
        remaining = max(self.max_episode_steps - steps_done, 0)
        return np.full(len(obs), self.max_step_reward * remaining, dtype=np.float64)


# LunarLander's shaping potential is at most 20 (at the pad, at rest, level, both legs touching),
# and an episode's last reward is at most the +100 landing bonus.
LUNAR_MAX_SHAPING = 20.0
LUNAR_LANDING_BONUS = 100.0
# The observation is the float32 copy of the float64 state the env scores; this margin covers the
# potential's rounding difference (well under 1e-3) many times over.
LUNAR_ROUNDING_MARGIN = 0.01


def lunar_lander_shaping(obs: np.ndarray) -> np.ndarray:
    """Gymnasium LunarLander's shaping potential of each observation row (its own formula)."""
    obs = np.asarray(obs, dtype=np.float64)
    return (
        -100.0 * np.hypot(obs[:, 0], obs[:, 1])
        - 100.0 * np.hypot(obs[:, 2], obs[:, 3])
        - 100.0 * np.abs(obs[:, 4])
        + 10.0 * obs[:, 6]
        + 10.0 * obs[:, 7]
    )


@dataclass(frozen=True)
class LunarLanderBound:
    """What a LunarLander episode can still earn from observation ``o``: at most
    ``20 - shaping(o) + 100``.

    Every non-final step pays ``shaping(now) - shaping(before) - fuel`` with fuel ≥ 0, so those
    rewards telescope to at most ``shaping(last) - shaping(o) <= 20 - shaping(o)``; the final step
    pays -100 (crash, out of bounds) or +100 (at rest), or, at the time limit, one more shaping
    difference. Wind, turbulence and gravity settings change the physics, not this formula.
    """

    def best_remaining(self, obs: np.ndarray, steps_done: int) -> np.ndarray:
        shaping = lunar_lander_shaping(obs)
        return LUNAR_MAX_SHAPING - shaping + LUNAR_LANDING_BONUS + LUNAR_ROUNDING_MARGIN


# The most one step can pay, for the envs where it is known (CartPole +1; Acrobot and MountainCar pay
# -1 per step and 0 at the goal).
MAX_STEP_REWARD = {"CartPole": 1.0, "Acrobot": 0.0, "MountainCar": 0.0}


def family_of(env_id: str) -> str:
    """Gymnasium's own env family ('CartPole' for 'CartPole-v1'); '' for a namespaced env, whose
    rewards this module knows nothing about."""
    spec = gym.spec(env_id)
    return spec.name if spec.namespace is None else ""


def remaining_return_bound(env_id: str, max_episode_steps: int | None) -> RemainingReturnBound | None:
    """The bound for ``env_id``'s episodes, or None where none is known (evaluate every episode to
    its end)."""
    family = family_of(env_id)
    if family == "LunarLander":
        return LunarLanderBound()
    if family in MAX_STEP_REWARD and max_episode_steps is not None:
        return StepRewardBound(MAX_STEP_REWARD[family], max_episode_steps)
    return None
