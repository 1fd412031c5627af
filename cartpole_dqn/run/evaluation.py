"""Vectorized greedy evaluation and the solve criterion: a deciding evaluation's mean greedy return
over ``eval_episodes`` (100) episodes reaches the threshold.

All episodes of one evaluation run side by side in one vector env, one env per episode,
with one batched forward pass per step: 100 CartPole episodes cost about 500 forward passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.dqn.policies import DQNPolicy

from cartpole_dqn.dqn.fast.explicit import explicit_network
from cartpole_dqn.run.envs import make_eval_env
from cartpole_dqn.run.return_bounds import RemainingReturnBound


class GreedyPolicy(Protocol):
    """Anything with SB3's ``predict`` signature: a model, a policy, or an exported policy."""

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, Any]: ...


@dataclass(frozen=True)
class EvalResult:
    """Returns of finished greedy episodes.

    ``stopped_early``: the evaluation stopped once passing had become impossible, and ``returns``
    holds only its first episodes, which still ran to the end (see :class:`PassBound`).
    """

    returns: np.ndarray
    seed: int
    stopped_early: bool = False

    @property
    def episodes(self) -> int:
        return len(self.returns)

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    @property
    def min(self) -> float:
        return float(np.min(self.returns))

    @property
    def max(self) -> float:
        return float(np.max(self.returns))


@dataclass(frozen=True)
class PassBound:
    """When an evaluation may stop: once its mean can no longer reach the threshold.

    The finished episodes' returns are known; every running one can still earn at most its partial
    return plus what ``remaining`` allows from its current observation (see ``run.return_bounds``).
    If that best case stays below ``threshold * episodes``, no continuation passes: stopping then
    never changes a verdict (it only skips work on evaluations that fail anyway).
    """

    threshold: float
    remaining: RemainingReturnBound

    def pass_impossible(
        self, returns: np.ndarray, running: np.ndarray, steps_done: int, obs: np.ndarray
    ) -> bool:
        best_total = float(returns.sum())
        if running.any():
            best_total += float(self.remaining.best_remaining(obs[running], steps_done).sum())
        needed = self.threshold * returns.size
        return best_total < needed - 1e-9 * max(1.0, abs(needed))  # a rounding margin, never a false stop


def run_greedy_episodes(
    policy: GreedyPolicy,
    venv: gym.vector.VectorEnv,
    seed: int,
    max_steps: int | None = None,
    bound: PassBound | None = None,
    keep: int = 0,
) -> EvalResult:
    """Play one greedy episode in each sub-env of ``venv`` (reset with ``seed``); return their returns.

    With ``bound``, stop as soon as the episodes' mean can no longer reach its threshold; the first
    ``keep`` episodes still run to the end, and the result holds just those (``stopped_early``).
    A synchronous vector env of Python envs (LunarLander's) steps only the episodes still needed:
    stepping all of them would play on finished ones (autoreset) until the longest one ends.
    """
    n = venv.num_envs
    act = _greedy_action_fn(policy)
    obs, _ = venv.reset(seed=seed)
    step_live = _live_stepper(venv, obs)
    returns = np.zeros(n, dtype=np.float64)
    running = np.ones(n, dtype=bool)
    wanted = np.ones(n, dtype=bool)  # episodes whose return the result still needs
    stopped = False
    limit = max_steps if max_steps is not None else 100_000
    for step in range(1, limit + 1):
        live = running & wanted
        obs, rewards, done = step_live(live, act(obs if live.all() else obs[live]).reshape(-1))
        returns += np.where(running, rewards, 0.0)
        running &= ~done
        if bound is not None and not stopped and bound.pass_impossible(returns, running, step, obs):
            stopped = True
            wanted[keep:] = False
        if not (running & wanted).any():
            break
    if stopped:
        return EvalResult(returns=returns[:keep].copy(), seed=seed, stopped_early=True)
    return EvalResult(returns=returns, seed=seed)


StepLive = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _live_stepper(venv: gym.vector.VectorEnv, first_obs: np.ndarray) -> StepLive:
    """``(live mask, actions of the live episodes) -> (obs, rewards, done)`` for all sub-envs; only
    rewards and done of live episodes are meaningful (and obs of running ones).

    A ``SyncVectorEnv`` steps each live sub-env itself, in order (what the vector env would do for
    them, without touching the others); other vector envs (CartPole's numpy one) step as a whole,
    finished sub-envs getting a dummy action.
    """
    n = venv.num_envs
    if isinstance(venv, gym.vector.SyncVectorEnv):
        envs = venv.envs
        obs = np.array(first_obs, copy=True)
        rewards = np.zeros(n, dtype=np.float64)
        done = np.zeros(n, dtype=bool)

        def step_each(live: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            rewards[:] = 0.0
            done[:] = False
            for i, action in zip(np.flatnonzero(live), actions, strict=True):
                obs[i], reward, terminated, truncated, _ = envs[i].step(action)
                rewards[i] = reward
                done[i] = terminated or truncated
            return obs, rewards, done

        return step_each

    all_actions = np.zeros(n, dtype=np.int64)

    def step_all(live: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        all_actions[:] = 0  # finished sub-envs are reset by the vector env; their action is ignored
        all_actions[live] = actions
        obs, rewards, terminated, truncated, _ = venv.step(all_actions)
        return obs, rewards, np.asarray(terminated) | np.asarray(truncated)

    return step_all


def _greedy_action_fn(policy: GreedyPolicy) -> Callable[[np.ndarray], np.ndarray]:
    """Batched greedy actions. For an SB3 DQN (or sb3-contrib QR-DQN) policy on Box observations,
    one forward pass of its Q-network (quantile network) per step, without per-call mode switching
    or input checks (through the explicit forward where the network allows it: the same Q-values,
    less overhead)."""
    if not isinstance(policy, (DQNPolicy, QRDQNPolicy)) or not isinstance(
        policy.observation_space, spaces.Box
    ):
        return lambda obs: np.asarray(policy.predict(obs, deterministic=True)[0])
    policy.set_training_mode(False)
    device = policy.device
    q_values = _q_value_fn(policy)

    def act(obs: np.ndarray) -> np.ndarray:
        with th.inference_mode():
            q = q_values(th.as_tensor(obs, dtype=th.float32, device=device))
        return q.argmax(dim=1).cpu().numpy()

    return act


def _q_value_fn(policy: DQNPolicy | QRDQNPolicy) -> Callable[[th.Tensor], th.Tensor]:
    """Observations -> Q-values (batch, n_actions): a DQN policy's Q-network (its explicit forward
    where the network allows it), or a QR-DQN policy's mean over quantiles, as QRDQNPolicy acts."""
    if isinstance(policy, QRDQNPolicy):
        quantile_net = policy.quantile_net
        return lambda obs: quantile_net(obs).mean(dim=1)
    explicit = explicit_network(policy.q_net, None)
    return policy.q_net if explicit is None else explicit.forward


class Evaluator:
    """Greedy evaluation of ``episodes`` episodes on its own vector env, kept for reuse across calls.

    :param bound: stop an evaluation once a pass is impossible (None: always play every episode)
    :param keep: episodes that still run to the end after such a stop (their mean is the result)
    """

    def __init__(
        self,
        env_id: str,
        episodes: int,
        max_episode_steps: int | None = None,
        bound: PassBound | None = None,
        keep: int = 0,
    ) -> None:
        self.episodes = episodes
        self.max_episode_steps = max_episode_steps
        self.bound = bound
        self.keep = keep
        self._venv = make_eval_env(env_id, episodes)

    def __call__(self, policy: GreedyPolicy, seed: int) -> EvalResult:
        limit = None if self.max_episode_steps is None else self.max_episode_steps + 1
        return run_greedy_episodes(policy, self._venv, seed, limit, self.bound, self.keep)

    def close(self) -> None:
        self._venv.close()


def evaluate_greedy(
    policy: GreedyPolicy, env_id: str, episodes: int, seed: int, max_episode_steps: int | None = None
) -> EvalResult:
    """One-off greedy evaluation over ``episodes`` episodes."""
    evaluator = Evaluator(env_id, episodes, max_episode_steps)
    try:
        return evaluator(policy, seed)
    finally:
        evaluator.close()


def is_solved(mean_return: float, threshold: float) -> bool:
    """The solve criterion: the deciding evaluation's mean return reaches the threshold."""
    return mean_return >= threshold


@dataclass(frozen=True)
class Recording:
    """What :func:`record_gif` wrote: frames, their size, the real frame rate and the episode's return."""

    frames: int
    height: int
    width: int
    fps: float
    episode_return: float


def gif_durations(frames: int, fps: int) -> list[int]:
    """Per-frame durations in ms, in the 10 ms steps GIF stores, averaging exactly 1000 / fps.

    GIF delays are whole centiseconds, so 30 fps (33.3 ms) cannot be one delay: the rounding error
    is carried over (30, 30, 40, ...), so the animation runs at the requested rate overall.
    """
    durations, owed = [], 0.0
    for _ in range(frames):
        owed += 1000.0 / fps
        step = max(10, round(owed / 10.0) * 10)
        durations.append(step)
        owed -= step
    return durations


def record_gif(policy: Any, env_id: str, path: Path, seed: int, fps: int) -> Recording:
    """Render one greedy episode at full render resolution to an animated GIF (or, for a ``.mp4``
    path, an H.264 video)."""
    import os
    import tempfile

    # pygame (CartPole's renderer) complains on stderr when XDG_RUNTIME_DIR is unset, as in
    # containers and CI; a private folder keeps it quiet without touching a real session's value.
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="cartpole_dqn-xdg-"))
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    import gymnasium as gym
    import imageio.v3 as iio

    env = gym.make(env_id, render_mode="rgb_array")
    total = 0.0
    try:
        obs, _ = env.reset(seed=seed)
        frames: list[Any] = [env.render()]
        done = False
        while not done:
            action, _ = policy.predict(obs[None], deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(np.asarray(action).reshape(-1)[0]))
            total += float(reward)
            frames.append(env.render())
            done = terminated or truncated
    finally:
        env.close()
    images = np.stack([np.asarray(f) for f in frames if f is not None])
    if path.suffix.lower() == ".mp4":  # H.264 through imageio's ffmpeg plugin (the `video` extra)
        iio.imwrite(path, images, extension=".mp4", plugin="FFMPEG", fps=fps, codec="libx264",
                    macro_block_size=1)  # fmt: skip
        return Recording(len(images), int(images.shape[1]), int(images.shape[2]), float(fps), total)
    durations = gif_durations(len(images), fps)
    iio.imwrite(path, images, extension=".gif", duration=durations, loop=0)
    real_fps = 1000.0 * len(durations) / sum(durations)
    return Recording(len(images), int(images.shape[1]), int(images.shape[2]), real_fps, total)
