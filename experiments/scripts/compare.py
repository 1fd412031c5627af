"""Compare named variants of a config over many seeds, in one invocation (a benchmark that prints figures).

Usage:
  python experiments/scripts/compare.py --seeds 20 --seed-start 2000 \
      --variants '{"default": {}, "net 128": {"net_arch": [128, 128]}}' [--base default]

Each variant is the base config with the given overrides; every (variant, seed) run goes through
the same runner as ``train`` (2 runs in parallel, one torch thread each). Prints one Markdown row
per variant: solved within the budget, stays solved, median steps and wall to solve with IQR,
median training throughput. The default config was chosen with this script on seeds 2000-2019;
the benchmark reports it on seeds 1000-1009, which the choice never saw.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from cartpole_dqn.config import RunConfig, load_config, resolve_config_path
from cartpole_dqn.run.multiseed import RunSpec, run_many
from cartpole_dqn.run.stats import summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=json.loads, required=True, help="JSON: name -> config overrides")
    parser.add_argument("--base", default="default", help="config name or path (default: default)")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--seed-start", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/compare"))
    args = parser.parse_args()
    base = load_config(resolve_config_path(args.base))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    specs = [
        RunSpec(
            f"v{index}",
            RunConfig.from_mapping({**base.to_dict(), **overrides, "seed": seed}),
            args.out / stamp / "runs",
            args.out / stamp / "tb",
        )
        for seed in range(args.seed_start, args.seed_start + args.seeds)
        for index, overrides in enumerate(args.variants.values())
    ]
    start = time.perf_counter()
    runs = run_many(specs, jobs=args.jobs)
    print(
        f"{len(specs)} runs in {time.perf_counter() - start:.0f} s; "
        f"seeds {args.seed_start}..{args.seed_start + args.seeds - 1}"
    )
    print("| variant | solved | stays solved | median steps (IQR) | median wall s (IQR) | steps/s |")
    print("|---|---|---|---|---|---|")
    for index, name in enumerate(args.variants):
        s = summarize([run for spec, run in zip(specs, runs, strict=True) if spec.label == f"v{index}"])
        steps = (
            "-"
            if s.steps_iqr is None
            else f"{s.steps_median:,.0f} ({s.steps_iqr[0]:,.0f}–{s.steps_iqr[1]:,.0f})"
        )
        wall = "-" if s.wall_iqr is None else f"{s.wall_median:.2f} ({s.wall_iqr[0]:.2f}–{s.wall_iqr[1]:.2f})"
        print(
            f"| {name} | {s.solved}/{s.runs} | {s.stays_solved}/{s.runs} | {steps} | {wall} "
            f"| {s.steps_per_s_median:.0f} |"
        )


if __name__ == "__main__":
    main()
