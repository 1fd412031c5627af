"""Many (config, seed) training runs in parallel worker processes, and their summary statistics.

Each run goes through :func:`cartpole_dqn.runner.run_training` (the same path as ``train``), in a
worker process with one torch thread, so ``jobs`` runs share the cores without oversubscription.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cartpole_dqn.config import RunConfig


@dataclass(frozen=True)
class RunSpec:
    """One run of a multi-seed experiment: a labelled config and the seed it runs with."""

    label: str
    config: RunConfig
    output_dir: Path
    log_dir: Path

    @property
    def run_name(self) -> str:
        return f"{self.label}-seed{self.config.seed}"


def _run_spec(spec: RunSpec) -> dict[str, Any]:
    from cartpole_dqn.artifacts import allocate_run
    from cartpole_dqn.envs import check_env
    from cartpole_dqn.runner import run_training

    env_info = check_env(spec.config)
    config = spec.config.replace(threshold=env_info.threshold)
    paths = allocate_run(spec.output_dir, spec.log_dir, None, spec.run_name)
    results = run_training(config, env_info, paths)
    return {"label": spec.label, **results}


def run_many(
    specs: Sequence[RunSpec],
    jobs: int,
    on_result: Callable[[dict[str, Any], int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every spec (``jobs`` at a time); results come back in the order of ``specs``."""
    results: list[dict[str, Any] | None] = [None] * len(specs)
    context = mp.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(_run_spec, spec): i for i, spec in enumerate(specs)}
        for done, future in enumerate(as_completed(futures), start=1):
            i = futures[future]
            results[i] = future.result()
            if on_result is not None:
                on_result(results[i], done, len(specs))  # type: ignore[arg-type]
    return [r for r in results if r is not None]


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


def solved_within(run: dict[str, Any], budget: int | None) -> bool:
    """Solved at a step within the budget (the run's own, else ``budget``): "solved within B"."""
    limit = run.get("budget", budget)
    return bool(run["solved"]) and (limit is None or run["steps_to_solve"] <= limit)


def summarize(runs: Iterable[dict[str, Any]], budget: int | None = None) -> dict[str, Any]:
    """Solve rate, steps/wall to solve (median, IQR), stays-solved and throughput of one config's runs.

    Unsolved runs count in the solve rate and are never dropped; steps and wall statistics are over
    the solved runs, and ``steps_to_solve_censored`` treats an unsolved run as the full budget.
    """
    runs = list(runs)
    solved = [r for r in runs if solved_within(r, budget)]
    steps = [float(r["steps_to_solve"]) for r in solved]
    walls = [float(r["wall_to_solve_s"]) for r in solved]
    censored = [
        float(r["steps_to_solve"]) if solved_within(r, budget) else float(budget or r["total_steps"])
        for r in runs
    ]

    def med(xs: list[float]) -> float | None:
        return float(np.median(xs)) if xs else None

    return {
        "runs": len(runs),
        "solved": len(solved),
        "seeds": [r["seed"] for r in runs],
        "steps_median": med(steps),
        "steps_iqr": iqr(steps) if steps else None,
        "steps_to_solve_censored_median": med(censored),
        "wall_median": med(walls),
        "wall_iqr": iqr(walls) if walls else None,
        "stays_solved": sum(bool(r["stays_solved"]) and solved_within(r, budget) for r in runs),
        "steps_per_s_median": med([float(r["steps_per_s"]) for r in runs]),
    }
