"""The benchmark's pictures: eval-return curves (median and IQR band over seeds) and steps to solve."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cartpole_dqn.run.results import RunResult
from cartpole_dqn.run.stats import solved_within


def curve_grid(runs: Sequence[RunResult], eval_freq: int, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Eval means on a common step grid, one row per run; a run that stopped holds its last value.

    The grid is every ``eval_freq`` steps and the budget itself, where every run is evaluated once
    more, also when the budget is not a multiple of ``eval_freq`` (or is smaller than it)."""
    grid = np.arange(eval_freq, budget + 1, eval_freq)
    if not len(grid) or grid[-1] != budget:
        grid = np.append(grid, budget)
    rows = []
    for run in runs:
        steps = np.array([e.step for e in run.evaluations], dtype=float)
        means = np.array([e.mean for e in run.evaluations], dtype=float)
        if not len(steps):  # e.g. diverged before its first evaluation
            rows.append(np.full(len(grid), np.nan))
            continue
        index = np.searchsorted(steps, grid, side="right") - 1
        rows.append(np.where(index >= 0, means[np.clip(index, 0, None)], np.nan))
    return grid, np.array(rows)


def write_plots(
    runs: dict[str, list[RunResult]],
    eval_freqs: dict[str, int],
    budget: int,
    threshold: float,
    max_return: float | None,
    stem: Path,
) -> list[Path]:
    """``<stem>-curves.png`` and ``<stem>-steps.png`` for the runs of each config label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env_id = next(r.env_id for rs in runs.values() for r in rs)
    paths = []
    fig, ax = plt.subplots(figsize=(9, 5))
    last_step = 0
    for label, mine in runs.items():
        grid, values = curve_grid(mine, eval_freqs[label], budget)
        if not len(values):
            continue
        reached = grid <= max(r.total_steps for r in mine)
        last_step = max(last_step, int(grid[reached][-1]) if reached.any() else 0)
        median = np.nanmedian(values, axis=0)
        q25, q75 = np.nanpercentile(values, [25, 75], axis=0)
        line = ax.plot(grid[reached], median[reached], label=f"{label} (median of {len(mine)} seeds)")[0]
        ax.fill_between(grid[reached], q25[reached], q75[reached], alpha=0.2, color=line.get_color())
    ax.axhline(threshold, ls="--", color="k", lw=1, label=f"threshold {threshold:g}")
    if max_return is not None:
        ax.axhline(max_return, ls="--", color="gray", lw=1, label=f"maximum {max_return:g}")
    ax.set_xlabel("training env steps")
    ax.set_ylabel("greedy eval mean return (100 episodes; first 10 if stopped early)")
    ax.set_title(f"{env_id}: eval return vs steps (band: IQR over seeds; solved runs hold their value)")
    ax.set_xlim(0, max(last_step, 1))
    ax.legend(loc="lower right", fontsize=8)
    paths.append(stem.with_name(stem.name + "-curves.png"))
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = list(runs)
    data: list[list[Any]] = [
        [r.steps_to_solve if solved_within(r) else np.nan for r in runs[label]] for label in labels
    ]
    ax.boxplot(
        [[x for x in d if not np.isnan(x)] or [np.nan] for d in data], tick_labels=labels, showfliers=False
    )
    rng = np.random.default_rng(0)
    for i, config_steps in enumerate(data, start=1):
        solved = [x for x in config_steps if not np.isnan(x)]
        jitter = i + rng.uniform(-0.12, 0.12, len(solved))
        ax.scatter(jitter, solved, s=14, alpha=0.7, zorder=3)
        unsolved = len(config_steps) - len(solved)
        if unsolved:  # drawn at the budget line, inside the axes, so no seed disappears from the plot
            xs = i + rng.uniform(-0.12, 0.12, unsolved)
            ax.scatter(xs, [budget] * unsolved, marker="x", color="tab:red", s=24, zorder=3)
            ax.annotate(
                f"{unsolved} unsolved", (i, budget), xytext=(0, 6), textcoords="offset points",
                ha="center", va="bottom", fontsize=8, color="tab:red",
            )  # fmt: skip
    if any(np.isnan(x) for d in data for x in d):
        ax.axhline(budget, color="grey", linestyle="--", linewidth=0.8)
        ax.annotate(
            f"budget {budget:,}: unsolved seeds (x) sit here", (0.5, budget), xytext=(4, -12),
            textcoords="offset points", fontsize=7, color="grey",
        )  # fmt: skip
        low, high = ax.get_ylim()
        ax.set_ylim(min(low, 0), max(high, budget * 1.12))
    ax.set_ylabel("env steps to solve")
    ax.set_title("steps to solve per config (each dot a seed)")
    paths.append(stem.with_name(stem.name + "-steps.png"))
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths
