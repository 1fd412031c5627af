"""Where a training step's time goes, against the hardware floor (a benchmark that prints figures).

Usage: python experiments/scripts/overhead.py [--repeats 5] [--steps 10000] [--sections ...]
       [--threads 1]

Sections (one torch thread unless --threads, as the benchmark runs each run):
  floor      the GEMMs of one gradient step of a network (online forward, target forward,
             backward = input and weight gradients), chained alone on preallocated tensors: what
             the arithmetic costs on this CPU, with no framework; for the default network at the
             default's batch (64) and for a [256, 256] network at batch 128 (the MountainCar and
             LunarLander configs' net and batch)
  grad-step  time per gradient step on a filled buffer (agent.train(32, batch) repeated): our
             DQNAgent with the default config (and with PER: what prioritized replay adds to a
             step), and on [256, 256] at batch 128 (dueling, plain MLP),
             stock SB3 DQN on the same, a plain eager torch step (nn.Sequential, fused Adam,
             clipping); each against the floor of its network
  env-steps  training throughput (env steps/s, learn() without evaluation) on CartPole's zoo
             config: stock SB3 DQN, DQNAgent with plug-ins off, + PER, + Double + PER; on the default
             config with and without PER (PER overhead); QR-DQN (qrdqn.yaml) against the same
             schedule and [64, 64] MLP on DQNAgent
  tasks      training throughput on MountainCar-v0 and LunarLander-v3: stock SB3 DQN and DQNAgent
             (plug-ins off) on the zoo block, and our config for the task
  setup      from process start to the first env step, in a fresh interpreter (its exit not
             counted), beside a fresh interpreter that imports torch alone
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
from functools import partial
from pathlib import Path
from typing import Any

import torch as th

from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.run.envs import make_train_env
from cartpole_dqn.run.factory import build_agent

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ZOO = load_config(CONFIGS / "sb3_zoo_baseline.yaml")
DEFAULT = load_config(CONFIGS / "default.yaml")
QRDQN = load_config(CONFIGS / "qrdqn.yaml")
BATCH = 64  # the default config's batch
WIDE_BATCH = 128  # the MountainCar and LunarLander configs' batch, on their [256, 256] net
TORCH_THREADS = [1]  # --threads: every agent built here learns with this many


def agent_for(config: RunConfig) -> Any:
    """The agent (ours or stock) for ``config``, on its training env, with --threads torch threads."""
    config = config.replace(torch_threads=TORCH_THREADS[0])
    return build_agent(config, make_train_env(config))


def median_time(fn: Callable[[], Any], repeats: int, inner: int) -> float:
    """Median over ``repeats`` of the mean seconds per call over ``inner`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def gemm_floor(repeats: int, hidden: list[int], batch: int, heads: int = 3) -> tuple[float, float]:
    """Seconds for the GEMMs of one gradient step of a dueling network (``hidden`` trunk; value and
    advantage heads: ``heads`` outputs) at ``batch``, and their FLOP count."""
    sizes = [4, *hidden]
    dims = list(itertools.pairwise(sizes))
    x = th.randn(batch, 4)
    weights = [th.randn(i, o) * 0.1 for i, o in dims] + [th.randn(hidden[-1], heads) * 0.1]
    grads = [th.empty_like(w) for w in weights]
    # Real values everywhere: uninitialized memory can hold denormals, which crawl on x86.
    acts = [th.randn(batch, o) for _, o in dims] + [th.randn(batch, heads)]
    dacts = [th.randn_like(a) for a in acts]
    flops = sum(2 * batch * w.shape[0] * w.shape[1] for w in weights)
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


def plain_torch_step(batch: int) -> Callable[[], None]:
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
        idx = th.randint(0, 10_000, (batch,))
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


WIDE = DEFAULT.replace(net_arch=[256, 256], batch_size=WIDE_BATCH)
PLAIN = f"plain eager torch, [256, 256] MLP, batch {WIDE_BATCH}"
PER_STEP = f"DQNAgent, default config + PER (prioritized sample, weights, priority update), batch {BATCH}"


def grad_steps(repeats: int) -> dict[str, tuple[float, str]]:
    """Seconds per gradient step, and whose floor applies ("default" or "wide")."""
    zoo_wide = ZOO.replace(batch_size=WIDE_BATCH)
    agents = {
        f"DQNAgent, default config (dueling {DEFAULT.net_arch}, batch {BATCH})": (DEFAULT, "default"),
        PER_STEP: (DEFAULT.replace(prioritized_replay=True), "default"),
        f"DQNAgent, default config with a dueling [256, 256] net, batch {WIDE_BATCH}": (WIDE, "wide"),
        f"DQNAgent, zoo block, plug-ins off ([256, 256] MLP, batch {WIDE_BATCH})": (
            zoo_wide.replace(implementation="cartpole_dqn"),
            "wide",
        ),
        f"stock SB3 DQN, zoo block ([256, 256] MLP, batch {WIDE_BATCH})": (zoo_wide, "wide"),
    }
    variants: dict[str, Callable[[], Any]] = {}
    for name, (config, _) in agents.items():
        agent = filled(agent_for(config))
        variants[name] = partial(agent.train, gradient_steps=32, batch_size=config.batch_size)
    plain = plain_torch_step(WIDE_BATCH)
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
            return agent_for(config.replace(seed=seed, **changes))

        return build

    off = ZOO.replace(implementation="cartpole_dqn")
    return {
        "zoo: stock SB3 DQN": ours(ZOO),
        "zoo: DQNAgent, plug-ins off": ours(off),
        "zoo: DQNAgent + PER": ours(off, prioritized_replay=True),
        "zoo: DQNAgent + Double + PER": ours(off, prioritized_replay=True, double_q=True),
        "default": ours(DEFAULT),
        "default + PER": ours(DEFAULT, prioritized_replay=True),
        f"DQN: qrdqn.yaml's schedule, {QRDQN.net_arch} MLP": ours(QRDQN, algorithm="dqn", n_quantiles=None),
        "QR-DQN: qrdqn.yaml": ours(QRDQN),
    }


TASKS = {"MountainCar-v0": "mountaincar", "LunarLander-v3": "lunarlander"}


def task_variants() -> dict[str, Callable[[int], Any]]:
    def ours(config: RunConfig, **changes: Any) -> Callable[[int], Any]:
        def build(seed: int) -> Any:
            return agent_for(config.replace(seed=seed, **changes))

        return build

    variants = {}
    for env_id, name in TASKS.items():
        zoo = load_config(CONFIGS / f"{name}_zoo_baseline.yaml")
        variants[f"{env_id}: stock SB3 DQN, zoo block"] = ours(zoo)
        variants[f"{env_id}: DQNAgent, zoo block, plug-ins off"] = ours(zoo, implementation="cartpole_dqn")
        variants[f"{env_id}: DQNAgent, {name}.yaml"] = ours(load_config(CONFIGS / f"{name}.yaml"))
    return variants


def env_steps(
    steps: int, repeats: int, variants: Callable[[], dict[str, Callable[[int], Any]]], warm: int = 0
) -> dict[str, list[float]]:
    """Env steps/s of ``learn(steps)`` per variant; with ``warm``, timed after ``warm`` untimed steps
    (past every config's learning_starts, so all variants are timed while they train)."""
    rates: dict[str, list[float]] = {name: [] for name in variants()}
    for repeat in range(repeats):
        for name, build in variants().items():
            model = build(repeat)
            if warm:
                model.learn(warm)
            start = time.perf_counter()
            model.learn(steps, reset_num_timesteps=not warm)
            rates[name].append(steps / (time.perf_counter() - start))
    return rates


SETUP_PROBE = """
import time
start = time.monotonic()
from cartpole_dqn.config import RunConfig
from cartpole_dqn.run.factory import build_agent
from cartpole_dqn.run.envs import make_train_env
imported = time.monotonic()
from stable_baselines3.common.callbacks import BaseCallback
class First(BaseCallback):
    def _on_step(self):
        raise SystemExit(0)
config = RunConfig()
agent = build_agent(config, make_train_env(config))
built = time.monotonic()
try:
    agent.learn(10, callback=First())
except SystemExit:
    pass
first = time.monotonic()
print(start, imported - start, built - imported, first - built, first)
"""
# What no set-up can go below: a fresh interpreter importing torch and nothing else.
TORCH_PROBE = """
import time
import torch
print(time.monotonic())
"""


def spawn(probe: str) -> tuple[float, list[float]]:
    """The monotonic time just before a fresh interpreter runs ``probe``, and the numbers it prints."""
    begin = time.monotonic()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return begin, [float(value) for value in out.stdout.split()]


def setup(repeats: int) -> dict[str, float]:
    """Medians over fresh interpreters. The total runs from just before the process is spawned to
    the first env step, both read on the monotonic clock the child shares with this process (on
    Linux), so the child's exit and teardown are not counted."""
    rows: dict[str, list[float]] = {
        "process start to first env step": [],
        "of which interpreter start": [],
        "of which imports": [],
        "build agent and env": [],
        "learn() to first env step": [],
        "for reference: `import torch` alone, process start to done": [],
    }
    for _ in range(repeats):
        begin, (start, imports, build, first, end) = spawn(SETUP_PROBE)
        rows["process start to first env step"].append(end - begin)
        rows["of which interpreter start"].append(start - begin)
        rows["of which imports"].append(imports)
        rows["build agent and env"].append(build)
        rows["learn() to first env step"].append(first)
        begin, (done,) = spawn(TORCH_PROBE)
        rows["for reference: `import torch` alone, process start to done"].append(done - begin)
    return {name: statistics.median(values) for name, values in rows.items()}


def print_rates(title: str, rates: dict[str, list[float]], stock_of: Callable[[str], str]) -> None:
    print(f"\n| {title} | env steps/s | all repeats | vs stock SB3 on the same block |")
    print("|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        stock = statistics.median(rates[stock_of(name)])
        every = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {median:.0f} | {every} | {median / stock:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="env steps per throughput measurement")
    parser.add_argument("--task-steps", type=int, default=3_000, help="timed env steps per task run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--sections", nargs="*", default=["floor", "grad-step", "env-steps", "tasks", "setup"]
    )
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    TORCH_THREADS[0] = args.threads
    print(
        f"{platform.processor() or platform.machine()}, torch {th.__version__}, {args.threads} torch "
        f"thread(s), {args.repeats} interleaved repeats, medians"
    )
    floors: dict[str, float] = {}
    if "floor" in args.sections or "grad-step" in args.sections:
        print("\n| floor: one gradient step's GEMMs alone | batch | MFLOP | µs | GFLOP/s |")
        print("|---|---|---|---|---|")
        for kind, hidden, batch in (("default", DEFAULT.net_arch, BATCH), ("wide", [256, 256], WIDE_BATCH)):
            seconds, flops = gemm_floor(args.repeats, hidden, batch)
            floors[kind] = seconds
            print(
                f"| dueling {hidden} | {batch} | {flops / 1e6:.1f} | {seconds * 1e6:.0f} "
                f"| {flops / seconds / 1e9:.0f} |"
            )
    if "grad-step" in args.sections:
        print("\n| gradient step | µs | × its network's floor |\n|---|---|---|")
        steps = grad_steps(args.repeats)
        for name, (seconds, kind) in steps.items():
            print(f"| {name} | {seconds * 1e6:.0f} | {seconds / floors[kind]:.2f} |")
        uniform = next(iter(steps.values()))[0]
        per = steps[PER_STEP][0]
        extra = f"{(per - uniform) * 1e6:+.0f} µs ({100 * (per / uniform - 1):+.0f}%)"
        print(f"\nPER per gradient step, default config: {extra}")
    if "env-steps" in args.sections:
        rates = env_steps(args.steps, args.repeats, env_step_variants)
        print_rates(
            f"CartPole-v1 training throughput ({args.steps:,} steps)", rates, lambda _: "zoo: stock SB3 DQN"
        )
        median = {name: statistics.median(values) for name, values in rates.items()}
        print()
        for with_per, without in (
            ("zoo: DQNAgent + PER", "zoo: DQNAgent, plug-ins off"),
            ("default + PER", "default"),
        ):
            extra_time = 100 * (median[without] / median[with_per] - 1)
            print(f"PER overhead, {with_per}: {extra_time:+.0f}% time per env step")
        dqn = next(name for name in median if name.startswith("DQN: qrdqn"))
        ratio = median["QR-DQN: qrdqn.yaml"] / median[dqn]
        print(f"QR-DQN / DQN env steps/s on the same schedule and net: {ratio:.2f}")
    if "tasks" in args.sections:
        rates = env_steps(args.task_steps, args.repeats, task_variants, warm=2_000)
        print_rates(
            f"training throughput after 2,000 steps ({args.task_steps:,} timed steps)",
            rates,
            lambda name: f"{name.split(':')[0]}: stock SB3 DQN, zoo block",
        )
    if "setup" in args.sections:
        print("\n| set-up (fresh interpreter) | s |\n|---|---|")
        for name, seconds in setup(args.repeats).items():
            print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
