"""Environment checks and construction: training envs for SB3, vectorized envs for evaluation.

Checking an env needs only gymnasium; SB3 (and with it torch) is imported where a training env
is built, so the command lines can refuse a bad env id at once.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gymnasium as gym
from gymnasium import spaces

from cartpole_dqn.config import RunConfig
from cartpole_dqn.errors import ConfigError

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

# Eval and final re-evaluation envs are seeded away from the training envs, so a policy is never
# scored on the start states it trained on.
EVAL_SEED_OFFSET = 1_000_003
FINAL_EVAL_SEED_OFFSET = 2_000_029


# The evaluation return that scores 0 on the tuner's curve (tuning.objective): about what a uniformly
# random policy earns, so the curve measures progress past acting at random. Envs not listed: 0 for a
# positive threshold (CartPole's random policy earns ~25, its returns are never negative), minus the
# step limit for a negative one (Acrobot and MountainCar pay -1 per step, and a random policy runs
# out the clock: -500 and -200). LunarLander's threshold is positive but its returns are not: a
# random policy averages about -190 over 100 episodes (5th-95th percentile -370 to -40).
RETURN_FLOOR = {"LunarLander": -200.0}


def reward_floor(name: str, threshold: float, max_episode_steps: int | None) -> float:
    """The return that scores 0 on the tuner's curve for env family ``name`` (see RETURN_FLOOR)."""
    if name in RETURN_FLOOR:
        return RETURN_FLOOR[name]
    if threshold > 0:
        return 0.0
    return -float(max_episode_steps or 500)


# Gymnasium's optional physics engines, and the extra of this package that installs each.
EXTRAS = {"Box2D": "box2d"}


def env_build_error(env_id: str, exc: Exception) -> str:
    """One line for an env that cannot be built. A missing physics engine names this package's
    extra (gymnasium's own hint names its extra and a swig build that the pinned wheel does not
    need); anything else is the first line of the reason."""
    if isinstance(exc, gym.error.DependencyNotInstalled):
        for module, extra in EXTRAS.items():
            if module in str(exc):
                return (
                    f"env '{env_id}' needs {module}, which is not installed; install this package's "
                    f"'{extra}' extra: pip install -c constraints.txt -e \".[{extra}]\""
                )
    return f"cannot create env '{env_id}': {exc}".splitlines()[0]


@dataclass(frozen=True)
class EnvInfo:
    env_id: str
    threshold: float
    max_return: float | None
    max_episode_steps: int | None
    reward_floor: float = 0.0


def env_info_of(config: RunConfig) -> EnvInfo:
    """Check that ``config.env_id`` exists and fits DQN; resolve the solve threshold."""
    env_id = config.env_id
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        known = [k for k in gym.registry if not k.startswith(("ALE/", "tabular/"))]
        hint = difflib.get_close_matches(env_id, known, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ConfigError(f"unknown env id '{env_id}'{suggestion}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gym.make(env_id)
    except Exception as exc:  # a missing dependency, or an env that fails to build
        raise ConfigError(env_build_error(env_id, exc)) from None
    try:
        if not isinstance(env.action_space, spaces.Discrete):
            raise ConfigError(
                f"env '{env_id}' has a {type(env.action_space).__name__} action space; "
                "DQN needs a Discrete action space"
            )
        if not isinstance(env.observation_space, spaces.Box):
            raise ConfigError(
                f"env '{env_id}' has a {type(env.observation_space).__name__} observation space; "
                "this package supports Box observation spaces"
            )
    finally:
        env.close()
    threshold = config.threshold if config.threshold is not None else spec.reward_threshold
    if threshold is None:
        raise ConfigError(
            f"env '{env_id}' has no reward_threshold in its spec; set a threshold", about="threshold"
        )
    max_steps = spec.max_episode_steps
    # CartPole's maximum return is its step limit (reward 1 per step); other envs have no known maximum.
    max_return = float(max_steps) if env_id.startswith("CartPole") and max_steps else None
    family = spec.name if spec.namespace is None else ""  # the per-family tables know gymnasium's own envs
    floor = reward_floor(family, float(threshold), max_steps)
    return EnvInfo(env_id, float(threshold), max_return, max_steps, floor)


def resolve_env(config: RunConfig) -> tuple[RunConfig, EnvInfo]:
    """Check the config's env and fix its threshold (the spec's, unless the config sets one), so the
    config a run saves records what decided it."""
    info = env_info_of(config)
    return config.replace(threshold=info.threshold), info


def make_train_env(config: RunConfig) -> VecEnv:
    """The SB3 training env: ``n_envs`` copies in a DummyVecEnv, seeded with ``config.seed``.

    Baselines (``implementation: sb3``) get SB3's own DummyVecEnv, as its users run it; our agent
    gets one that hands out the step's info dicts without deep-copying them every step.
    """
    from stable_baselines3.common.env_util import make_vec_env

    from cartpole_dqn.run.vec_env import ListedInfosDummyVecEnv

    vec_env_cls = None if config.implementation == "sb3" else ListedInfosDummyVecEnv
    return make_vec_env(config.env_id, n_envs=config.n_envs, seed=config.seed, vec_env_cls=vec_env_cls)


def make_eval_env(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """A gymnasium vector env for batched greedy evaluation.

    Uses the env's own vectorized implementation when it has one (CartPole: pure numpy, about
    100x faster than stepping 100 Python envs), else a synchronous vector of copies.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = gym.spec(env_id)
        if spec.vector_entry_point is not None:
            try:
                return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
            except Exception:  # some vector entry points need extra packages; fall back
                pass
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
