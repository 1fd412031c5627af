"""Paired difference in steps to solve between two configs of a committed benchmark record.

Usage:
  python experiments/scripts/paired.py experiments/results/benchmark-CartPole-v1-<stamp>.json \
      --config qrdqn --baseline qrdqn_zoo_baseline

The benchmark prints each config against one baseline (the last of --configs); this reads the same
per-seed runs from its JSON record and prints another pair the same way (median of the per-seed
differences, unsolved = budget, with its bootstrap CI), plus the ratio of the median steps.
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
    parser.add_argument("record", type=Path)
    parser.add_argument("--config", required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--bootstrap", type=int, default=10_000)
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    runs = {
        label: sorted(
            (RunResult.from_dict(r) for r in record["runs"] if r["label"] == label), key=lambda r: r.seed
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
