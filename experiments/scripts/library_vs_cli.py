"""The README's Python snippet against ``python -m cartpole_dqn.train`` on the same config.

Each variant runs in a fresh process, ``--repeats`` times; the figure is the median wall of
``learn()`` (the CLI's ``train_wall_s`` with evaluations off, so the two time the same work):

- ``library, torch_threads=None``: torch's default thread count (one per core), what the
  library did before the ``torch_threads`` argument;
- ``library, default``: ``DQNAgent``'s default ``torch_threads=1``;
- ``cli``: the command line on a YAML config with the snippet's settings and SB3's defaults.

Run on an idle machine: ``python experiments/scripts/library_vs_cli.py --repeats 5``; with
``--busy N``, N processes spin on the CPU meanwhile (a machine whose cores are busy with other work,
where torch's one-thread-per-core default waits for them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SNIPPET = """
import time
from stable_baselines3.common.env_util import make_vec_env
from cartpole_dqn import DQNAgent, PrioritizedReplayBuffer

env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
agent = DQNAgent(
    "DuelingMlpPolicy",
    env,
    double_q=True,
    n_steps=3,
    replay_buffer_class=PrioritizedReplayBuffer,
    replay_buffer_kwargs={"alpha": 0.6, "beta_initial": 0.4},
    policy_kwargs={"net_arch": [256, 256], "stream_arch": []},
    learning_starts=1000,
    train_freq=64,
    gradient_steps=32,
    seed=0,
    EXTRA
)
start = time.perf_counter()
agent.learn(total_timesteps=2_000)
print(time.perf_counter() - start)
"""

# The snippet's settings, with SB3 DQN's defaults for everything it leaves out.
CONFIG = """
policy: DuelingMlpPolicy
net_arch: [256, 256]
dueling_stream_arch: []
double_q: true
n_steps: 3
prioritized_replay: true
per_alpha: 0.6
per_beta_initial: 0.4
learning_starts: 1000
train_freq: 64
gradient_steps: 32
learning_rate: 0.0001
buffer_size: 1000000
batch_size: 32
gamma: 0.99
tau: 1.0
target_update_interval: 10000
exploration_fraction: 0.1
exploration_initial_eps: 1.0
exploration_final_eps: 0.05
max_grad_norm: 10
total_timesteps: 2000
eval_freq: 0
seed: 0
"""


def library(extra: str) -> float:
    code = SNIPPET.replace("EXTRA", extra)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def cli(folder: Path, index: int) -> float:
    config = folder / "snippet.yaml"
    config.write_text(CONFIG)
    name = f"snippet-{index}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cartpole_dqn.train",
            "--config",
            str(config),
            "--run-name",
            name,
            "--no-progress",
            "--runs-dir",
            str(folder / "runs"),
            "--log-dir",
            str(folder / "tb"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads((folder / "runs" / name / "results.json").read_text())["train_wall_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="CPU-spinning processes meanwhile")
    args = parser.parse_args()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        report(args.repeats, args.busy)
    finally:
        for spinner in spinners:
            spinner.kill()


def report(repeats: int, busy: int) -> None:
    walls: dict[str, list[float]] = {"library, torch_threads=None": [], "library, default": [], "cli": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            walls["library, torch_threads=None"].append(library("torch_threads=None,"))
            walls["library, default"].append(library(""))
            walls["cli"].append(cli(Path(tmp), i))
    cli_median = statistics.median(walls["cli"])
    print(
        f"learn() wall, median of {repeats} fresh processes (2,000 steps, README snippet config; "
        f"{busy} CPU-spinning processes beside it):"
    )
    for label, values in walls.items():
        median = statistics.median(values)
        print(
            f"  {label:30s} {median:7.2f} s  ({median / cli_median:.2f}x the CLI)  runs: "
            + " ".join(f"{v:.2f}" for v in values)
        )


if __name__ == "__main__":
    main()
