"""Ablation of the plug-ins and schedule on CartPole-v1 (issue: plug-ins + new default).

Usage: python experiments/scripts/ablation.py --seeds 5 --seed-start 100 [--variants a b ...]
Prints one Markdown row per variant; per-run records go to <out>/ablation-runs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.run.multiseed import RunSpec, run_many
from cartpole_dqn.run.stats import summarize

ZOO = Path(__file__).resolve().parents[1] / "configs" / "sb3_zoo_baseline.yaml"

ALL4 = {"n_steps": 3, "double_q": True, "policy": "DuelingMlpPolicy", "prioritized_replay": True}
SCHEDULE = {"train_freq": 64, "gradient_steps": 32}  # the update schedule of the default config
OURS = {"implementation": "cartpole_dqn"}
VARIANTS: dict[str, dict[str, Any]] = {
    "zoo": {},  # stock SB3 DQN
    "zoo (our DQNAgent, plug-ins off)": OURS,
    "zoo +nstep3": {"n_steps": 3},
    "zoo +double": {"double_q": True},
    "zoo +dueling": {"policy": "DuelingMlpPolicy"},
    "zoo +per": {"prioritized_replay": True},
    "zoo +all4": ALL4,
    "nstep3 +schedule": {"n_steps": 3, **SCHEDULE},
    "default (nstep3 +schedule +dueling)": {"n_steps": 3, **SCHEDULE, "policy": "DuelingMlpPolicy"},
    "default +double": {"n_steps": 3, **SCHEDULE, "policy": "DuelingMlpPolicy", "double_q": True},
    "default +per": {"n_steps": 3, **SCHEDULE, "policy": "DuelingMlpPolicy", "prioritized_replay": True},
    "default +double +per (all4)": {**ALL4, **SCHEDULE},
}


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9+]+", "_", name).strip("_")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-start", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--extra", type=json.loads, default={}, help="JSON dict of named extra variants")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ablation"))
    args = parser.parse_args()
    variants = {**VARIANTS, **args.extra}
    base = load_config(ZOO)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    specs = []
    for name in args.variants:
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            overrides = {**OURS, **variants[name]} if name != "zoo" else {}
            config = RunConfig.from_mapping({**base.to_dict(), **overrides, "seed": seed})
            label = slug(name)
            specs.append(RunSpec(label, config, args.out / stamp / "runs", args.out / stamp / "tb"))
    runs = run_many(specs, jobs=args.jobs)
    args.out.mkdir(parents=True, exist_ok=True)
    records = [{"label": spec.label, **run.to_dict()} for spec, run in zip(specs, runs, strict=True)]
    (args.out / f"ablation-runs-{stamp}.json").write_text(json.dumps(records, indent=1))
    print("| variant | solved | stays solved | median steps (IQR) | median wall s (IQR) | steps/s |")
    print("|---|---|---|---|---|---|")
    for name in args.variants:
        s = summarize([run for spec, run in zip(specs, runs, strict=True) if spec.label == slug(name)])
        steps = (
            "-"
            if s.steps_iqr is None
            else f"{s.steps_median:,.0f} ({s.steps_iqr[0]:,.0f}–{s.steps_iqr[1]:,.0f})"
        )
        wall = "-" if s.wall_iqr is None else f"{s.wall_median:.1f} ({s.wall_iqr[0]:.1f}–{s.wall_iqr[1]:.1f})"
        rate = f"{s.solved}/{s.runs} | {s.stays_solved}/{s.runs}"
        print(f"| {name} | {rate} | {steps} | {wall} | {s.steps_per_s_median:.0f} |")


if __name__ == "__main__":
    main()
