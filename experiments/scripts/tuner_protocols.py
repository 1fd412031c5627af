"""Which tuning protocol gives the best answer on seeds nobody looked at (a benchmark that prints figures).

Usage:
  python experiments/scripts/tuner_protocols.py --sweep-seeds 1 2 3 --held-out-start 6000 \
      --variants median median-e500 halving wilcoxon [--config default] [--space core]

For every variant and sweep seed it runs the real command, ``python -m cartpole_dqn.tune --trials
50 --seed S ...`` (its fresh-seed selection included), then re-trains on ``--held-out`` seeds that
neither the sweep nor the selection used: the base config, the sweep's best trial (what the tuner
answered before the fresh-seed pick) and the pick (best.yaml). Prints, per variant, the sweep and
selection wall times, the pick, its estimate against its held-out median, and paired differences
(base - config steps to solve per held-out seed, unsolved = budget) for the sweep's best and the
pick. Variants: median (today's median pruner, K = 3), median-e500 (the same with evaluations every
500 steps inside trials), halving (successive halving over seeds, 3 -> 6), wilcoxon (up to 6 seeds,
stopped when significantly worse than the best).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.run.multiseed import RunSpec, run_many
from cartpole_dqn.run.results import RunResult
from cartpole_dqn.run.stats import paired_difference, solved_within
from cartpole_dqn.tuning.space import overrides_from_params
from cartpole_dqn.tuning.studies import StoreSettings, open_storage

VARIANTS = {
    "median": ["--pruner", "median"],
    "median-e500": ["--pruner", "median", "--trial-eval-freq", "500"],
    "halving": ["--pruner", "halving"],
    "wilcoxon": ["--pruner", "wilcoxon"],
}


def censored_median(runs: list[RunResult]) -> float:
    return float(np.median([r.steps_to_solve if solved_within(r) else r.budget for r in runs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--sweep-seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--held-out", type=int, default=20)
    parser.add_argument("--held-out-start", type=int, default=6000)
    parser.add_argument("--config", default="default")
    parser.add_argument("--space", default="core")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument(
        "--extra", default="", help="more tune flags in one string, e.g. '--total-timesteps 50000'"
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/tuner-protocols"))
    args = parser.parse_args()
    jobs = os.cpu_count() or 1
    held_out = list(range(args.held_out_start, args.held_out_start + args.held_out))
    cache: dict[str, list[RunResult]] = {}

    def held_out_runs(label: str, config: RunConfig) -> list[RunResult]:
        key = json.dumps(config.replace(seed=0).to_dict(), sort_keys=True)
        if key not in cache:
            specs = [
                RunSpec(label, config.replace(seed=s), args.out / "held-out", args.out / "tb")
                for s in held_out
            ]
            cache[key] = run_many(specs, jobs=jobs)
        return cache[key]

    rows: list[dict[str, Any]] = []
    for variant in args.variants:
        for seed in args.sweep_seeds:
            name = f"{variant}-s{seed}"
            command = [
                sys.executable, "-m", "cartpole_dqn.tune", "--trials", str(args.trials), "--seed", str(seed),
                "--config", args.config, "--space", args.space, "--study-name", name,
                "--output-dir", str(args.out / "tuning"), "--log-dir", str(args.out / "tb"), "--no-progress",
                *VARIANTS[variant], *args.extra.split(),
            ]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                print(f"{name}: tune failed: {done.stderr[-2000:]}", file=sys.stderr)
                continue
            sweep_wall = float(done.stdout.split("sweep wall time: ")[1].split(" s")[0])
            folder = args.out / "tuning" / name
            selection = json.loads((folder / "selection.json").read_text())
            study = optuna.load_study(
                study_name=name,
                storage=open_storage(StoreSettings(None, args.out / "tuning" / "journal.log")),
            )
            top = study.best_trial
            recorded = RunConfig.from_mapping(study.user_attrs["base_config"])
            pick_config = load_config(folder / "best.yaml")
            base_runs = held_out_runs("base", recorded)
            top_runs = held_out_runs(f"{name}-top", recorded.replace(**overrides_from_params(top.params)))
            pick_runs = held_out_runs(f"{name}-pick", pick_config)
            rng = np.random.default_rng(0)
            top_paired = paired_difference(top_runs, base_runs, rng)
            pick_paired = paired_difference(pick_runs, base_runs, rng)
            assert top_paired is not None and pick_paired is not None
            held = censored_median(pick_runs)
            rows.append(
                {
                    "variant": variant,
                    "sweep_seed": seed,
                    "wall_s": wall,
                    "sweep_wall_s": sweep_wall,
                    "complete": sum(t.state.name == "COMPLETE" for t in study.trials),
                    "top_trial": top.number,
                    "top_value": top.value,
                    "top_held_out_median": censored_median(top_runs),
                    "top_vs_base_paired_median": top_paired.median,
                    "top_solved": sum(solved_within(r) for r in top_runs),
                    "pick": selection["pick"],
                    "pick_estimate": selection["estimate_median"],
                    "pick_held_out_median": held,
                    "pick_estimate_error": (selection["estimate_median"] - held) / held,
                    "pick_vs_base_paired_median": pick_paired.median,
                    "pick_solved": sum(solved_within(r) for r in pick_runs),
                    "base_held_out_median": censored_median(base_runs),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    (args.out / "rows.json").write_text(json.dumps(rows, indent=1))
    print(
        f"\nheld-out seeds {held_out[0]}..{held_out[-1]}; paired: base - config steps to solve per seed "
        "(unsolved = budget; > 0: the config is faster)\n"
    )
    print(
        "| variant | sweep seed | command wall s (sweep) | complete trials | sweep best: held-out median "
        "(paired vs base) | pick | pick estimate | pick held-out median (paired vs base) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['sweep_seed']} | {r['wall_s']:.0f} ({r['sweep_wall_s']:.0f}) | "
            f"{r['complete']} | trial {r['top_trial']}: {r['top_held_out_median']:,.0f} "
            f"({r['top_vs_base_paired_median']:+,.0f}; "
            f"{r['top_solved']}/{len(held_out)} solved) | {r['pick']} | {r['pick_estimate']:,.0f} | "
            f"{r['pick_held_out_median']:,.0f} ({r['pick_vs_base_paired_median']:+,.0f}) |"
        )


if __name__ == "__main__":
    main()
