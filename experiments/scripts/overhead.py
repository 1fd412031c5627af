"""Training throughput of DQNAgent against stock SB3 DQN on the same config (a benchmark, not a test).

Usage: python experiments/scripts/overhead.py [--steps 10000] [--repeats 3]

Rows, all on the sb3_zoo_baseline config (CartPole-v1, one torch thread, no evaluation callback):
  stock SB3 DQN             stable_baselines3.DQN, as users run it
  DQNAgent, plug-ins off    our subclass, uniform replay, vanilla target (the update is bit-identical)
  DQNAgent + PER            our subclass with PrioritizedReplayBuffer
  DQNAgent + double + PER   both plug-ins that touch the update
The variants run interleaved (A B C D A B C D ...) so machine drift hits them alike; the table
reports the median env steps/s over repeats and the time per step relative to stock SB3.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env

from cartpole_dqn.config import load_config
from cartpole_dqn.dqn.agent import DQNAgent
from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer

ZOO = Path(__file__).resolve().parents[1] / "configs" / "sb3_zoo_baseline.yaml"


def zoo_kwargs(seed: int) -> dict[str, Any]:
    c = load_config(ZOO)
    return dict(
        learning_rate=c.learning_rate,
        buffer_size=c.buffer_size,
        learning_starts=c.learning_starts,
        batch_size=c.batch_size,
        gamma=c.gamma,
        train_freq=c.train_freq,
        gradient_steps=c.gradient_steps,
        target_update_interval=c.target_update_interval,
        exploration_fraction=c.exploration_fraction,
        exploration_final_eps=c.exploration_final_eps,
        policy_kwargs={"net_arch": c.net_arch},
        seed=seed,
        device="cpu",
    )


def variants() -> dict[str, Callable[[int], Any]]:
    env = lambda seed: make_vec_env("CartPole-v1", seed=seed)  # noqa: E731
    per = {"replay_buffer_class": PrioritizedReplayBuffer}
    return {
        "stock SB3 DQN": lambda s: DQN("MlpPolicy", env(s), **zoo_kwargs(s)),
        "DQNAgent, plug-ins off": lambda s: DQNAgent("MlpPolicy", env(s), **zoo_kwargs(s)),
        "DQNAgent + PER": lambda s: DQNAgent("MlpPolicy", env(s), **per, **zoo_kwargs(s)),
        "DQNAgent + double + PER": lambda s: DQNAgent(
            "MlpPolicy", env(s), double_q=True, **per, **zoo_kwargs(s)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    th.set_num_threads(1)
    rates: dict[str, list[float]] = {name: [] for name in variants()}
    for repeat in range(args.repeats):
        for name, build in variants().items():
            model = build(repeat)
            start = time.perf_counter()
            model.learn(args.steps)
            rates[name].append(args.steps / (time.perf_counter() - start))
    print(
        f"{args.steps:,} env steps per measurement, {args.repeats} interleaved repeats, 1 torch thread, "
        f"{platform.processor() or platform.machine()}, torch {th.__version__}"
    )
    print("| variant | env steps/s (median) | all repeats | time per step vs stock |")
    print("|---|---|---|---|")
    stock = statistics.median(rates["stock SB3 DQN"])
    for name, values in rates.items():
        median = statistics.median(values)
        every = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {median:.0f} | {every} | {100 * (stock / median - 1):+.1f}% |")


if __name__ == "__main__":
    main()
