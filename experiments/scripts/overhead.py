"""Where a training step's time goes, against the hardware floor (a benchmark that prints figures).

Usage: python experiments/scripts/overhead.py [--repeats 5] [--steps 10000] [--sections ...]

Sections (one torch thread throughout, as the benchmark runs each run):
  floor      the GEMMs of one gradient step of a network (batch 64: online forward,
             target forward, backward = input and weight gradients), chained alone on
             preallocated tensors: what the arithmetic costs on this CPU, with no framework
  grad-step  time per gradient step on a filled buffer (agent.train(32, 64) repeated): our
             DQNAgent with the default config and with the former default's [256, 256] net, stock
             SB3 DQN with the zoo config, a plain eager torch step (nn.Sequential, fused Adam,
             clipping); each against the floor of its network (the default's, or [256, 256])
  env-steps  training throughput (env steps/s, learn() without evaluation) on the zoo config:
             stock SB3 DQN, DQNAgent with plug-ins off, + PER, + Double + PER, and on the default
             config with and without PER
  setup      from process start to the first env step, in a fresh interpreter
Variants run interleaved (A B C A B C ...) so machine drift hits them alike; medians are printed.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch as th

from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.run.envs import make_train_env
from cartpole_dqn.run.factory import build_agent

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ZOO = load_config(CONFIGS / "sb3_zoo_baseline.yaml")
DEFAULT = load_config(CONFIGS / "default.yaml")
BATCH = 64


def median_time(fn: Callable[[], Any], repeats: int, inner: int) -> float:
    """Median over ``repeats`` of the mean seconds per call over ``inner`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def gemm_floor(repeats: int, hidden: list[int], heads: int = 3) -> tuple[float, float]:
    """Seconds for the GEMMs of one gradient step of a dueling network (``hidden`` trunk; value and
    advantage heads: ``heads`` outputs), and their FLOP count."""
    sizes = [4, *hidden]
    dims = list(itertools.pairwise(sizes))
    x = th.randn(BATCH, 4)
    weights = [th.randn(i, o) * 0.1 for i, o in dims] + [th.randn(hidden[-1], heads) * 0.1]
    grads = [th.empty_like(w) for w in weights]
    # Real values everywhere: uninitialized memory can hold denormals, which crawl on x86.
    acts = [th.randn(BATCH, o) for _, o in dims] + [th.randn(BATCH, heads)]
    dacts = [th.randn_like(a) for a in acts]
    flops = sum(2 * BATCH * w.shape[0] * w.shape[1] for w in weights)
    flops_total = 2 * flops + 2 * flops  # online + target forward, backward (input + weight grads)

    def step() -> None:
        for _ in range(2):  # online and target forward
            h = x
            for w, a in zip(weights, acts, strict=True):
                th.mm(h, w, out=a)
                h = a
        d = dacts[-1]
        for layer in range(len(weights) - 1, -1, -1):  # backward: weight grads, and input grads below
            inp = x if layer == 0 else acts[layer - 1]
            th.mm(inp.t(), d, out=grads[layer])
            if layer > 0:
                th.mm(d, weights[layer].t(), out=dacts[layer - 1])
                d = dacts[layer - 1]

    step()
    return median_time(step, repeats, 200), flops_total


def filled(agent: Any, transitions: int = 10_000) -> Any:
    """The agent with ``transitions`` random CartPole transitions in its buffer and no training yet."""
    learning_starts = agent.learning_starts
    agent.learning_starts = transitions + 1
    agent.learn(transitions)
    agent.learning_starts = learning_starts
    return agent


def plain_torch_step() -> Callable[[], None]:
    """A hand-written eager DQN step: the same net, loss, clipping and (fused) Adam, no framework."""
    net = th.nn.Sequential(
        th.nn.Linear(4, 256), th.nn.ReLU(), th.nn.Linear(256, 256), th.nn.ReLU(), th.nn.Linear(256, 2)
    )
    target = th.nn.Sequential(
        th.nn.Linear(4, 256), th.nn.ReLU(), th.nn.Linear(256, 256), th.nn.ReLU(), th.nn.Linear(256, 2)
    )
    opt = th.optim.Adam(net.parameters(), lr=2.3e-3, fused=True)
    obs, next_obs = th.randn(10_000, 4), th.randn(10_000, 4)
    actions, rewards, dones = th.randint(0, 2, (10_000, 1)), th.randn(10_000, 1), th.zeros(10_000, 1)

    def step() -> None:
        idx = th.randint(0, 10_000, (BATCH,))
        with th.no_grad():
            next_q = target(next_obs[idx]).max(dim=1).values.reshape(-1, 1)
            y = rewards[idx] + (1 - dones[idx]) * 0.99 * next_q
        q = net(obs[idx]).gather(1, actions[idx])
        loss = th.nn.functional.smooth_l1_loss(q, y)
        opt.zero_grad()
        loss.backward()
        th.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()

    return step


WIDE = DEFAULT.replace(net_arch=[256, 256], learning_rate=2.3e-3)  # the former default's network
PLAIN = "plain eager torch, [256, 256] MLP"


def grad_steps(repeats: int) -> dict[str, tuple[float, str]]:
    """Seconds per gradient step, and whose floor applies ("default" or "wide")."""
    agents = {
        f"DQNAgent, default config (dueling {DEFAULT.net_arch})": (DEFAULT, "default"),
        "DQNAgent, default config with a dueling [256, 256] net": (WIDE, "wide"),
        "stock SB3 DQN, zoo config ([256, 256] MLP)": (ZOO, "wide"),
    }
    variants: dict[str, Callable[[], Any]] = {}
    for name, (config, _) in agents.items():
        agent = filled(build_agent(config, make_train_env(config)))
        variants[name] = lambda a=agent: a.train(gradient_steps=32, batch_size=BATCH)
    plain = plain_torch_step()
    variants[PLAIN] = lambda: [plain() for _ in range(32)]
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            results[name].append(median_time(fn, 1, 10) / 32)
    kinds = {name: kind for name, (_, kind) in agents.items()} | {PLAIN: "wide"}
    return {name: (statistics.median(values), kinds[name]) for name, values in results.items()}


def env_step_variants() -> dict[str, Callable[[int], Any]]:
    def ours(config: RunConfig, **changes: Any) -> Callable[[int], Any]:
        def build(seed: int) -> Any:
            run = config.replace(seed=seed, **changes)
            return build_agent(run, make_train_env(run))

        return build

    off = ZOO.replace(implementation="cartpole_dqn")
    return {
        "zoo: stock SB3 DQN": ours(ZOO),
        "zoo: DQNAgent, plug-ins off": ours(off),
        "zoo: DQNAgent + PER": ours(off, prioritized_replay=True),
        "zoo: DQNAgent + Double + PER": ours(off, prioritized_replay=True, double_q=True),
        "default": ours(DEFAULT),
        "default + PER": ours(DEFAULT, prioritized_replay=True),
    }


def env_steps(steps: int, repeats: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in env_step_variants()}
    for repeat in range(repeats):
        for name, build in env_step_variants().items():
            model = build(repeat)
            start = time.perf_counter()
            model.learn(steps)
            rates[name].append(steps / (time.perf_counter() - start))
    return rates


SETUP_PROBE = """
import time
start = time.perf_counter()
from cartpole_dqn.config import RunConfig
from cartpole_dqn.run.factory import build_agent
from cartpole_dqn.run.envs import make_train_env
from cartpole_dqn.run.envs import make_train_env
imported = time.perf_counter()
from stable_baselines3.common.callbacks import BaseCallback
class First(BaseCallback):
    def _on_step(self):
        raise SystemExit(0)
config = RunConfig()
agent = build_agent(config, make_train_env(config))
built = time.perf_counter()
try:
    agent.learn(10, callback=First())
except SystemExit:
    pass
first = time.perf_counter()
print(imported - start, built - imported, first - built)
"""


def setup(repeats: int) -> dict[str, float]:
    rows: dict[str, list[float]] = {
        "process start to first env step": [],
        "of which imports": [],
        "build agent and env": [],
        "learn() to first env step": [],
    }
    for _ in range(repeats):
        begin = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", SETUP_PROBE], capture_output=True, text=True, check=True)
        total = time.perf_counter() - begin
        imports, build, first = map(float, out.stdout.split())
        rows["process start to first env step"].append(total)
        rows["of which imports"].append(imports)
        rows["build agent and env"].append(build)
        rows["learn() to first env step"].append(first)
    return {name: statistics.median(values) for name, values in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="env steps per throughput measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sections", nargs="*", default=["floor", "grad-step", "env-steps", "setup"])
    args = parser.parse_args()
    th.set_num_threads(1)
    print(
        f"{platform.processor() or platform.machine()}, torch {th.__version__}, 1 torch thread, "
        f"{args.repeats} interleaved repeats, medians"
    )
    floors: dict[str, float] = {}
    if "floor" in args.sections or "grad-step" in args.sections:
        print("\n| floor: one gradient step's GEMMs alone (batch 64) | MFLOP | µs | GFLOP/s |")
        print("|---|---|---|---|")
        for kind, hidden in (("default", DEFAULT.net_arch), ("wide", [256, 256])):
            seconds, flops = gemm_floor(args.repeats, hidden)
            floors[kind] = seconds
            print(
                f"| dueling {hidden} | {flops / 1e6:.1f} | {seconds * 1e6:.0f} "
                f"| {flops / seconds / 1e9:.0f} |"
            )
    if "grad-step" in args.sections:
        print("\n| gradient step | µs | × its network's floor |\n|---|---|---|")
        for name, (seconds, kind) in grad_steps(args.repeats).items():
            print(f"| {name} | {seconds * 1e6:.0f} | {seconds / floors[kind]:.2f} |")
    if "env-steps" in args.sections:
        rates = env_steps(args.steps, args.repeats)
        stock = statistics.median(rates["zoo: stock SB3 DQN"])
        uniform = {
            "zoo": statistics.median(rates["zoo: DQNAgent, plug-ins off"]),
            "default": statistics.median(rates["default"]),
        }
        print(
            f"\n| training throughput ({args.steps:,} steps) | env steps/s | all repeats | vs stock SB3 "
            "| PER overhead |"
        )
        print("|---|---|---|---|---|")
        for name, values in rates.items():
            median = statistics.median(values)
            base = uniform["default" if name.startswith("default") else "zoo"]
            per = f"{100 * (base / median - 1):+.0f}% time per step" if "PER" in name else "-"
            every = ", ".join(f"{v:.0f}" for v in values)
            print(f"| {name} | {median:.0f} | {every} | {median / stock:.2f}× | {per} |")
    if "setup" in args.sections:
        print("\n| set-up (fresh interpreter) | s |\n|---|---|")
        for name, seconds in setup(args.repeats).items():
            print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
