"""Many (config, seed) training runs in parallel worker processes.

Each run goes through :func:`cartpole_dqn.run.runner.train_new_run` (the same path as ``train``),
in a worker process with one torch thread, so ``jobs`` runs share the cores without
oversubscription. ``benchmark`` and ``tune --validate-seeds`` use it.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from cartpole_dqn.config import RunConfig
from cartpole_dqn.run.results import RunResult


@dataclass(frozen=True)
class RunSpec:
    """One run of a multi-seed experiment: a labelled config and the seed it runs with."""

    label: str
    config: RunConfig
    runs_root: Path
    log_root: Path

    @property
    def run_name(self) -> str:
        return f"{self.label}-seed{self.config.seed}"


def run_spec(spec: RunSpec) -> RunResult:
    """Train one spec in this process."""
    from cartpole_dqn.run.artifacts import allocate_run
    from cartpole_dqn.run.envs import resolve_env
    from cartpole_dqn.run.runner import train_new_run

    config, env = resolve_env(spec.config)
    paths = allocate_run(spec.runs_root, spec.log_root, None, spec.run_name)
    return train_new_run(config, env, paths)


def run_many(
    specs: Sequence[RunSpec],
    jobs: int,
    on_result: Callable[[RunSpec, RunResult, int, int], None] | None = None,
) -> list[RunResult]:
    """Run every spec (``jobs`` at a time); results come back in the order of ``specs``."""
    results: list[RunResult | None] = [None] * len(specs)
    context = mp.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(run_spec, spec): i for i, spec in enumerate(specs)}
        for done, future in enumerate(as_completed(futures), start=1):
            i = futures[future]
            result = future.result()
            results[i] = result
            if on_result is not None:
                on_result(specs[i], result, done, len(specs))
    return [r for r in results if r is not None]
