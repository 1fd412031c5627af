"""Many (config, seed) training runs in parallel worker processes.

Each run goes through :func:`cartpole_dqn.run.runner.train_new_run` (the same path as ``train``),
in a worker process with one torch thread, so ``jobs`` runs share the cores without
oversubscription. ``benchmark`` and ``tune --validate-seeds`` use it.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
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
    tensorboard: bool = True  # False: no TensorBoard curves for this run

    @property
    def run_name(self) -> str:
        return f"{self.label}-seed{self.config.seed}"


def run_spec(spec: RunSpec) -> RunResult:
    """Train one spec in this process; a run that diverges is an unsolved result (``diverged``), so
    one diverging seed cannot stop a whole experiment (it would diverge again on every rerun)."""
    from cartpole_dqn.run.artifacts import allocate_run
    from cartpole_dqn.run.envs import resolve_env
    from cartpole_dqn.run.runner import train_new_run

    config, env = resolve_env(spec.config)
    # Without curves nothing is created under log_root: the run folder stands in for its TensorBoard
    # folder, which is never written.
    log_root = spec.log_root if spec.tensorboard else spec.runs_root
    paths = allocate_run(spec.runs_root, log_root, None, spec.run_name)
    return train_new_run(config, env, paths, record_divergence=True, tensorboard=spec.tensorboard)


class RunsInterrupted(Exception):
    """``run_many`` stopped on a signal; the runs that finished had already been handed to ``on_result``."""

    def __init__(self, signum: int, done: int, total: int) -> None:
        super().__init__(f"interrupted after {done} of {total} runs")
        self.signum = signum
        self.done = done
        self.total = total


def _pool_child(parent: int) -> None:
    """Pool worker set-up: tied to the parent, which alone handles Ctrl-C (see run/children.py)."""
    import signal

    from cartpole_dqn.run.children import follow_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    follow_parent(parent)


def run_many(
    specs: Sequence[RunSpec],
    jobs: int,
    on_result: Callable[[RunSpec, RunResult, int, int], None] | None = None,
) -> list[RunResult]:
    """Run every spec (``jobs`` at a time); results come back in the order of ``specs``.

    The first Ctrl-C or SIGTERM stops the runs in progress and the ones not started, and raises
    :class:`RunsInterrupted` (finished runs were already passed to ``on_result``); a second one
    raises ``KeyboardInterrupt`` at once.
    """
    import os
    import signal

    from cartpole_dqn.run.children import signal_all, stop_signals

    results: list[RunResult | None] = [None] * len(specs)
    context = mp.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_pool_child, initargs=(os.getpid(),)
    )

    def stop_children(signum: int) -> None:
        processes = list(getattr(pool, "_processes", {}).values())  # the executor keeps no public list
        signal_all([p.pid for p in processes if p.pid is not None], signal.SIGKILL)

    done = 0
    with stop_signals(on_first=stop_children, on_second=lambda: stop_children(signal.SIGKILL)) as stop:
        try:
            futures = {pool.submit(run_spec, spec): i for i, spec in enumerate(specs)}
            for future in as_completed(futures):
                if stop.signum is not None:
                    break
                i = futures[future]
                result = future.result()
                results[i] = result
                done += 1
                if on_result is not None:
                    on_result(specs[i], result, done, len(specs))
        except BrokenProcessPool:
            if stop.signum is None:
                raise
        finally:
            pool.shutdown(wait=stop.signum is None, cancel_futures=True)
    if stop.signum is not None:
        raise RunsInterrupted(stop.signum, done, len(specs))
    return [r for r in results if r is not None]
