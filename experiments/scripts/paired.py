"""Paired difference in steps to solve between two configs of a committed benchmark record.

Usage:
  python experiments/scripts/paired.py experiments/results/benchmark-CartPole-v1-<stamp>.json \
      --config qrdqn --baseline qrdqn_zoo_baseline

The benchmark prints each config against one baseline (the last of --configs); this reads the same
per-seed runs from its JSON record and prints another pair the same way (median of the per-seed
differences, unsolved = budget, with its bootstrap CI), plus the ratio of the median steps. Several
records of one env (two invocations on the same seeds) may be given: their runs are pooled, and a
config label found in more than one of them is refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cartpole_dqn.run.results import RunResult
from cartpole_dqn.run.stats import paired_difference, ratio, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path, nargs="+")
    parser.add_argument("--config", required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--bootstrap", type=int, default=10_000)
    args = parser.parse_args()
    records = [json.loads(path.read_text()) for path in args.records]
    if len({record["env_id"] for record in records}) > 1:
        raise SystemExit("paired.py: the records are of different envs")
    for label in (args.config, args.baseline):
        holding = sum(label in record["configs"] for record in records)
        if holding != 1:
            raise SystemExit(f"paired.py: config {label!r} is in {holding} of the records (need exactly 1)")
    runs = {
        label: sorted(
            (RunResult.from_dict(r) for record in records for r in record["runs"] if r["label"] == label),
            key=lambda r: r.seed,
        )
        for label in (args.config, args.baseline)
    }
    ours, base = summarize(runs[args.config]), summarize(runs[args.baseline])
    difference = paired_difference(
        runs[args.config], runs[args.baseline], np.random.default_rng(0), args.bootstrap
    )
    assert difference is not None
    print(
        f"{args.config}: median {ours.steps_median:,.0f} steps; {args.baseline}: {base.steps_median:,.0f}; "
        f"{ratio(base.steps_median, ours.steps_median):.1f}x fewer steps, "
        f"{ratio(base.wall_median, ours.wall_median):.1f}x less wall"
    )
    low, high = difference.ci95
    print(
        f"{args.config} vs {args.baseline}, paired by seed ({len(difference.seeds)} seeds; "
        f"{args.baseline} - {args.config} steps to solve): median {difference.median:+,.0f}, "
        f"95% bootstrap CI [{low:+,.0f}, {high:+,.0f}]; fewer steps on {difference.config_better} seeds, "
        f"more on {difference.baseline_better}"
    )


if __name__ == "__main__":
    main()
