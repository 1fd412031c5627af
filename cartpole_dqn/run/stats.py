"""Statistics over runs, shared by the benchmark and the tuner: solve rate, medians with IQR,
bootstrap CIs, paired differences, Wilcoxon's signed-rank test, the Harrell-Davis median.

Unsolved seeds are never dropped: they count in the solve rate, and a median over all seeds counts
them as slower than any solve (or, in paired differences, as the full budget).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cartpole_dqn.run.results import RunResult


def solved_within(result: RunResult) -> bool:
    """Solved at a step within the run's budget: the only "solved" any summary counts."""
    return result.solved and result.steps_to_solve is not None and result.steps_to_solve <= result.budget


def run_outcome(result: RunResult) -> str:
    """How a run ended, for progress lines: solved (at what step and wall), diverged or unsolved."""
    if result.diverged is not None:
        return f"diverged, counted as unsolved ({result.diverged})"
    if solved_within(result):
        return f"solved at {result.steps_to_solve:,} steps, {result.wall_to_solve_s:.1f} s"
    return f"not solved within {result.budget:,} steps"


def iqr(values: Sequence[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles."""
    q25, q75 = np.percentile(np.asarray(values, dtype=float), [25, 75])
    return float(q25), float(q75)


def bootstrap_median_ci(
    values: Sequence[float], rng: np.random.Generator, resamples: int = 10_000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the median."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan")
    draws = rng.choice(data, size=(resamples, data.size), replace=True)
    medians = np.median(draws, axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(medians, [alpha, 1.0 - alpha])
    return float(low), float(high)


def unsolved_majority(unsolved: int, runs: int) -> bool:
    """Half or more of the runs unsolved: their median is "unsolved", never a step count."""
    return runs == 0 or 2 * unsolved >= runs


def censored_median(values: Sequence[float | None]) -> float:
    """The median over every run, an unsolved run (None) counting as more than any solve: ``inf``
    when half or more are unsolved, so a median never averages a solve with the budget into a
    figure no run reached; else the sample median, which then lies among the solves."""
    if unsolved_majority(sum(v is None for v in values), len(values)):
        return math.inf
    return float(np.median([math.inf if v is None else float(v) for v in values]))


def bootstrap_censored_median_ci(
    values: Sequence[float | None],
    rng: np.random.Generator,
    resamples: int = 10_000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI of :func:`censored_median` (a bound may be ``inf``: unsolved)."""
    if not values:
        return math.nan, math.nan
    data = np.asarray([math.inf if v is None else float(v) for v in values])
    draws = np.sort(rng.choice(data, size=(resamples, data.size), replace=True), axis=1)
    unsolved = np.isinf(draws).sum(axis=1)
    with np.errstate(invalid="ignore"):
        medians = np.median(draws, axis=1)
    medians = np.where(2 * unsolved >= data.size, math.inf, medians)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(medians, [alpha, 1.0 - alpha], method="inverted_cdf")
    return float(low), float(high)


@dataclass
class Summary:
    """One config's runs, summarized.

    ``steps_median`` and ``wall_median`` are over the solved seeds (with their IQR); the ``*_all``
    medians are over every seed, an unsolved one counting as slower than any solve (see
    :func:`censored_median`), and None when half or more are unsolved. The ratios against the
    baseline compare the ``*_all`` medians, so a config that solves fewer seeds cannot look faster
    by dropping them.
    """

    runs: int
    solved: int
    stays_solved: int
    seeds: list[int]
    steps_median: float | None  # over the solved seeds
    steps_iqr: tuple[float, float] | None
    steps_median_all: float | None  # every seed; None: half or more unsolved
    wall_median: float | None  # over the solved seeds
    wall_iqr: tuple[float, float] | None
    wall_median_all: float | None  # every seed; None: half or more unsolved
    steps_per_s_median: float
    diverged: int = 0
    steps_ci95: tuple[float, float] | None = None
    steps_ratio_vs_baseline: float | None = None
    wall_ratio_vs_baseline: float | None = None


def summarize(
    results: Sequence[RunResult], rng: np.random.Generator | None = None, resamples: int = 10_000
) -> Summary:
    """Solve rate, steps/wall to solve (median, IQR; with ``rng``, a bootstrap CI of the median
    steps), stays-solved and throughput of one config's runs."""
    solved = [r for r in results if solved_within(r)]
    steps = [float(r.steps_to_solve) for r in solved if r.steps_to_solve is not None]
    walls = [float(r.wall_to_solve_s) for r in solved if r.wall_to_solve_s is not None]
    steps_all = censored_median([r.steps_to_solve if solved_within(r) else None for r in results])
    walls_all = censored_median([r.wall_to_solve_s if solved_within(r) else None for r in results])
    return Summary(
        runs=len(results),
        solved=len(solved),
        stays_solved=sum(r.stays_solved and solved_within(r) for r in results),
        seeds=[r.seed for r in results],
        steps_median=_median(steps),
        steps_iqr=iqr(steps) if steps else None,
        steps_median_all=None if math.isinf(steps_all) else steps_all,
        wall_median=_median(walls),
        wall_iqr=iqr(walls) if walls else None,
        wall_median_all=None if math.isinf(walls_all) else walls_all,
        steps_per_s_median=float(np.median([r.steps_per_s for r in results])) if results else float("nan"),
        diverged=sum(r.diverged is not None for r in results),
        steps_ci95=bootstrap_median_ci(steps, rng, resamples) if rng is not None and steps else None,
    )


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def ratio(baseline: float | None, value: float | None) -> float | None:
    """How many times less ``value`` is than ``baseline`` (None when either is missing)."""
    return None if baseline is None or not value else baseline / value


@dataclass
class PairedDifference:
    """Steps to solve of a config against the baseline on the same seeds: ``baseline - config`` per
    seed (positive: the config needs fewer steps), an unsolved run counted as the full budget."""

    seeds: list[int]
    differences: list[float]
    median: float
    ci95: tuple[float, float]
    config_better: int  # seeds where the config solved in fewer steps
    baseline_better: int


def paired_difference(
    config: Sequence[RunResult],
    baseline: Sequence[RunResult],
    rng: np.random.Generator,
    resamples: int = 10_000,
) -> PairedDifference | None:
    """The median paired difference in steps to solve with a percentile bootstrap CI over seeds
    (None when the two share no seed). Pairing cancels each seed's luck, which both configs share."""
    base_by_seed = {r.seed: r for r in baseline}
    pairs = [(r, base_by_seed[r.seed]) for r in config if r.seed in base_by_seed]
    if not pairs:
        return None

    def censored(r: RunResult) -> float:
        return (
            float(r.steps_to_solve) if solved_within(r) and r.steps_to_solve is not None else float(r.budget)
        )

    differences = [censored(b) - censored(c) for c, b in pairs]
    return PairedDifference(
        seeds=[c.seed for c, _ in pairs],
        differences=differences,
        median=float(np.median(differences)),
        ci95=bootstrap_median_ci(differences, rng, resamples),
        config_better=sum(d > 0 for d in differences),
        baseline_better=sum(d < 0 for d in differences),
    )


def wilcoxon_signed_rank_p(differences: Sequence[float]) -> float:
    """One-sided exact p-value of Wilcoxon's signed-rank test that the differences tend to be > 0.

    Zero differences are dropped (Wilcoxon's own treatment) and tied magnitudes share their mean
    rank; the null distribution of the positive rank sum is counted exactly over all 2^n sign
    patterns (a dynamic program over doubled ranks, so mean ranks stay integers). Returns 1.0 when
    no difference is non-zero. (Wilcoxon 1945.)
    """
    nonzero = np.asarray([d for d in differences if d != 0], dtype=float)
    n = nonzero.size
    if n == 0:
        return 1.0
    magnitudes = np.abs(nonzero)
    order = np.argsort(magnitudes, kind="stable")
    doubled = np.empty(n, dtype=np.int64)  # 2 x (mean rank), an integer even with ties
    i = 0
    while i < n:
        j = i
        while j + 1 < n and magnitudes[order[j + 1]] == magnitudes[order[i]]:
            j += 1
        doubled[order[i : j + 1]] = i + j + 2  # ranks i+1 .. j+1 share (i + j + 2) / 2
        i = j + 1
    observed = int(doubled[nonzero > 0].sum())
    total = int(doubled.sum())
    counts = np.zeros(total + 1, dtype=np.float64)  # counts[s]: sign patterns with positive sum s
    counts[0] = 1.0
    for rank in doubled:
        counts[rank:] = counts[rank:] + counts[:-rank]  # the right side is evaluated first
    return float(counts[observed:].sum() / counts.sum())


def harrell_davis_weights(n: int, grid: int = 200_001) -> np.ndarray:
    """The Harrell-Davis weights of the median for ``n`` sorted values: w_i = I(i/n) - I((i-1)/n),
    where I is the Beta((n+1)/2, (n+1)/2) distribution function (integrated numerically)."""
    a = (n + 1) / 2.0
    x = np.linspace(0.0, 1.0, grid)[1:-1]
    log_density = (a - 1.0) * (np.log(x) + np.log1p(-x))
    density = np.exp(log_density - log_density.max())
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2.0)])
    cdf = np.concatenate([[0.0], cdf / cdf[-1], [1.0]])
    points = np.concatenate([[0.0], x, [1.0]])
    edges = np.interp(np.arange(n + 1) / n, points, cdf)
    return np.diff(edges)


def harrell_davis_median(values: Sequence[float]) -> float:
    """The Harrell-Davis estimate of the population median (Harrell & Davis 1982): a weighted average
    of every order statistic, steadier than the sample median where values are tied on a grid (steps
    to solve come in multiples of the evaluation interval, so a sample median jumps a whole interval)."""
    data = np.sort(np.asarray(values, dtype=float))
    if data.size == 0:
        return float("nan")
    return float(harrell_davis_weights(data.size) @ data)


def bootstrap_harrell_davis_ci(
    values: Sequence[float], rng: np.random.Generator, resamples: int = 10_000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the Harrell-Davis median."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan")
    draws = np.sort(rng.choice(data, size=(resamples, data.size), replace=True), axis=1)
    estimates = draws @ harrell_davis_weights(data.size)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(estimates, [alpha, 1.0 - alpha])
    return float(low), float(high)
