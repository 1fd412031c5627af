"""The sweep: Optuna trials made of ordinary training runs, claimed by any number of workers.

A trial trains its config on the sweep's tuning seeds (common to all trials), one after another,
each through the same runner as ``train``, and scores the mean of the per-seed values
(:mod:`cartpole_dqn.tuning.objective`). The study's first trial (trial 0) is the base config itself,
enqueued when the study is created, so the sweep's ranking always contains where the user started.
Pruning, both within a run and across seeds:

1. within a run: every evaluation is reported to Optuna through a ``TrialPruningCallback`` (the
   solve protocol's ``callback_after_eval``, as rl-baselines3-zoo's ``TrialEvalCallback``), at step
   ``seed index * stride + step``, so the pruner compares this trial's run on seed ``i`` with the
   other trials' runs on the same seed at the same step; a run that has not solved and that the
   pruner rejects stops, and so does the trial (a hopeless config is pruned on its first seed);
2. across seeds (:mod:`cartpole_dqn.tuning.seed_pruning`): a trial whose value can no longer reach 1
   is pruned once the study has a complete trial at 1 or above; with ``halving`` only the top third
   after ``K`` seeds earn ``K`` more, with ``wilcoxon`` a trial stops once it is significantly worse
   than the best complete trial on the seeds so far.

A run that solved is never pruned within its run. ``settings.trials`` is the total number of
finished (complete + pruned) trials the study ends with, across reruns and workers; a trial killed
with its worker is failed and re-run whole (all its seeds), never half-counted. Optuna is imported
inside the functions that use it, so the command line answers without it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cartpole_dqn.config import RunConfig
from cartpole_dqn.errors import UsageError

if TYPE_CHECKING:
    import optuna

    from cartpole_dqn.tuning.studies import StoreSettings

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "wilcoxon", "none")


@dataclass(frozen=True)
class SweepSettings:
    """Everything a worker process needs (picklable)."""

    base: RunConfig
    study_name: str
    trials: int
    space: str
    sampler: str
    pruner: str
    seed: int
    store: StoreSettings
    output_dir: Path
    log_dir: Path
    seeds_per_trial: int = 3
    trial_eval_freq: int | None = None  # evaluation interval inside trials (None: the base config's)
    progress: bool = False
    started_at: float = 0.0  # time.time() when the command started (for elapsed and ETA)
    finished_at_start: int = 0  # finished trials the study had then

    @property
    def study_dir(self) -> Path:
        return self.output_dir / self.study_name

    def recorded(self) -> dict[str, Any]:
        """What the study records about how its trials run (rerunning it with other values is refused)."""
        return {
            "base_config": self.base.to_dict(),
            "space": self.space,
            "seeds_per_trial": self.seeds_per_trial,
            "seed_pruner": self.pruner,
            "trial_eval_freq": self.trial_eval_freq or self.base.eval_freq,
        }

    @property
    def max_seeds(self) -> int:
        from cartpole_dqn.tuning.seed_pruning import max_seeds

        return max_seeds(self.pruner, self.seeds_per_trial)

    def trial_config(self, overrides: dict[str, Any], seed: int) -> RunConfig:
        """The config a trial trains on one seed: the base with its params (and the trial eval interval)."""
        config = self.base.replace(**overrides, seed=seed)
        return config if self.trial_eval_freq is None else config.replace(eval_freq=self.trial_eval_freq)


def make_sampler(settings: SweepSettings, worker: int) -> optuna.samplers.BaseSampler:
    import optuna

    seed = settings.seed * 1000 + worker  # each worker its own stream, reproducible from --seed
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)


def make_pruner(settings: SweepSettings) -> optuna.pruners.BasePruner:
    import optuna

    from cartpole_dqn.tuning.objective import run_span
    from cartpole_dqn.tuning.run_warmup import MedianAfterWarmupPruner

    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    eval_freq = settings.trial_eval_freq or settings.base.eval_freq
    budget = settings.base.total_timesteps
    # Half of every run first: on slow tasks (LunarLander) the eventual solvers still trail the
    # median at a third of the budget (experiments/results/README.md, the LunarLander sweeps).
    warmup = max(2 * eval_freq, budget // 2)
    return MedianAfterWarmupPruner(span=run_span(budget, eval_freq), warmup=warmup, n_startup_trials=5)


# What studies recorded before a setting existed (they ran as if with this value).
RECORDED_BEFORE = {"seeds_per_trial": 1, "seed_pruner": None, "trial_eval_freq": None}
SETTING_FLAGS = {
    "seeds_per_trial": "--seeds-per-trial",
    "seed_pruner": "--pruner",
    "trial_eval_freq": "--trial-eval-freq",
}


def record_settings(study: optuna.Study, settings: SweepSettings) -> None:
    """Record the sweep's settings in a new study and enqueue the base config as its first trial;
    refuse to mix other settings into an existing study."""
    from cartpole_dqn.tuning.space import base_params

    recorded = settings.recorded()
    attrs = study.user_attrs
    if "base_config" not in attrs:
        for key, value in recorded.items():
            study.set_user_attr(key, value)
        if not study.trials:
            study.enqueue_trial(base_params(settings.space, settings.base), user_attrs={"base": True})
        return
    for key, value in recorded.items():
        had = attrs.get(key, RECORDED_BEFORE.get(key))
        if had == value or (had is None and key in ("seed_pruner", "trial_eval_freq")):
            continue
        if key == "space":
            what = f"search space '{had}' (this run: '{value}')"
        elif key in SETTING_FLAGS:
            what = f"{SETTING_FLAGS[key]} {had} (this run: {value})"
        else:
            diff = sorted(k for k in value if attrs[key].get(k) != value[k])
            what = (
                "base config (" + ", ".join(f"{k} {attrs[key].get(k)!r} -> {value[k]!r}" for k in diff) + ")"
            )
        raise UsageError(
            f"study '{study.study_name}' was run with another {what}; its trials could not be ranked "
            "together: use the same settings or another study name",
            about="study_name",
        )


def run_trial(trial: optuna.Trial, settings: SweepSettings) -> float:
    """Train one trial's config on the tuning seeds; report every evaluation; prune as documented above."""
    import optuna

    from cartpole_dqn.tuning.space import suggest

    overrides = suggest(
        trial, settings.space, settings.base
    )  # first: a trial killed from here on has its params

    from cartpole_dqn.errors import DivergenceError
    from cartpole_dqn.run.artifacts import allocate_run
    from cartpole_dqn.run.envs import resolve_env
    from cartpole_dqn.run.runner import train_new_run
    from cartpole_dqn.run.stats import solved_within
    from cartpole_dqn.tuning.objective import CurveScore, trial_value
    from cartpole_dqn.tuning.pruning import TrialPruningCallback
    from cartpole_dqn.tuning.seeds import tuning_seeds

    seeds = tuning_seeds(settings.seed, settings.max_seeds)
    trial.set_user_attr("seeds", seeds)
    runs_root = settings.study_dir / "trials" / f"trial-{trial.number}"
    log_root = settings.log_dir / "tune" / settings.study_name / f"trial-{trial.number}"
    trial.set_user_attr("run_dir", str(runs_root))
    seed_results: list[dict[str, Any]] = []
    values: list[float] = []
    eval_means: list[float] = []
    outcome = "complete"
    try:
        for index, seed in enumerate(seeds):
            config, env = resolve_env(settings.trial_config(overrides, seed))
            score = CurveScore(
                config.total_timesteps,
                config.eval_freq,
                env.threshold,
                env.reward_floor,
            )
            paths = allocate_run(runs_root, log_root, None, f"seed-{seed}")
            pruning = TrialPruningCallback(trial, score, offset=index * score.span)
            try:
                result = train_new_run(config, env, paths, callback_after_eval=pruning)
            except DivergenceError as exc:
                seed_results.append(seed_result(seed, None, None))
                trial.set_user_attr("seed_results", seed_results)
                trial.set_user_attr("diverged", str(exc))
                outcome = "pruned"
                raise optuna.TrialPruned(str(exc)) from None
            solved = solved_within(result)
            seed_results.append(
                seed_result(
                    seed,
                    result.steps_to_solve if solved else None,
                    result.wall_to_solve_s if solved else None,
                )
            )
            values.append(score.value_of(result.steps_to_solve, [e.mean for e in result.evaluations]))
            eval_means.append(result.eval_mean)
            trial.set_user_attr("seed_results", seed_results)
            trial.set_user_attr("eval_means", eval_means)
            trial.set_user_attr("value_per_seed", values)
            if pruning.pruned:
                outcome = "pruned"
                raise optuna.TrialPruned(f"pruned on seed {seed} at step {result.total_steps}")
            if index + 1 < len(seeds):
                reason = across_seeds(trial, settings, values, len(seeds))
                if reason is not None:
                    outcome = "pruned"
                    raise optuna.TrialPruned(reason)
        return trial_value(values)
    except optuna.TrialPruned:
        raise
    except BaseException:
        outcome = "fail"
        raise
    finally:
        write_session(trial, settings, log_root, seed_results, values, outcome)


def seed_result(seed: int, steps_to_solve: int | None, wall_to_solve_s: float | None) -> dict[str, Any]:
    """One seed's entry in a trial's ``seed_results`` (solved means within the budget)."""
    return {
        "seed": seed,
        "solved": steps_to_solve is not None,
        "steps_to_solve": steps_to_solve,
        "wall_to_solve_s": wall_to_solve_s,
    }


def across_seeds(trial: optuna.Trial, settings: SweepSettings, values: list[float], seeds: int) -> str | None:
    """Why a trial that has run ``len(values)`` of its ``seeds`` seeds stops here (None: it goes on)."""
    from optuna.trial import TrialState

    from cartpole_dqn.tuning.objective import best_reachable
    from cartpole_dqn.tuning.seed_pruning import halving_promotes, wilcoxon_worse

    done = len(values)
    others = [t for t in trial.study.get_trials(deepcopy=False) if t.number != trial.number]
    complete = [t for t in others if t.state == TrialState.COMPLETE and t.value is not None]
    if best_reachable(values, seeds) < 1.0 and any((t.value or 0.0) >= 1.0 for t in complete):
        return f"after {done} of {seeds} seeds its value cannot reach 1 (a solver's)"
    if settings.pruner == "halving" and done == settings.seeds_per_trial:
        per_seed = [list(t.user_attrs.get("value_per_seed", [])) for t in others]
        if not halving_promotes(values, per_seed, done):
            return f"after {done} seeds its mean is not in the top third of the trials that ran them"
    if settings.pruner == "wilcoxon" and complete:
        best = max(complete, key=lambda t: t.value or 0.0)
        if wilcoxon_worse(values, list(best.user_attrs.get("value_per_seed", []))):
            return f"after {done} seeds it is worse than trial {best.number} (Wilcoxon signed-rank, p < 0.1)"
    return None


def write_session(
    trial: optuna.Trial,
    settings: SweepSettings,
    log_root: Path,
    seed_results: list[dict[str, Any]],
    values: list[float],
    outcome: str,
) -> None:
    """The trial's HParams session in TensorBoard (see :mod:`cartpole_dqn.tuning.hparams`)."""
    import math
    import statistics

    from cartpole_dqn.tuning.hparams import write_trial_session
    from cartpole_dqn.tuning.objective import median_steps, trial_value

    walls = [r["wall_to_solve_s"] for r in seed_results if r["solved"]]
    params: dict[str, Any] = {**trial.params, "study": settings.study_name, "state": outcome}
    metrics = {
        "trial/value": trial_value(values) if values else math.nan,
        "trial/solved_seeds": float(sum(r["solved"] for r in seed_results)),
        "trial/seeds": float(len(seed_results)),
        "trial/median_steps_to_solve": median_steps([r["steps_to_solve"] for r in seed_results]),
        "trial/median_wall_to_solve_s": statistics.median(walls) if walls else math.nan,
    }
    write_trial_session(log_root / "hparams", params, metrics)


def worker(settings: SweepSettings, index: int) -> int:
    """Claim and run trials until the study has ``settings.trials`` finished ones; returns trials run.

    Three things stop a worker early, none of them the trial's fault, so its trial is failed and
    enqueued again (the next run of the command re-runs it) and Optuna's "trial failed" warnings are
    not shown: a stop request (Ctrl-C, SIGTERM), a :class:`WriteError` (full disk, read-only
    folder), and a lost RDB storage (:class:`StorageLost`: the server went away).
    """
    import logging
    import threading

    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    from cartpole_dqn.errors import StorageLost, WriteError
    from cartpole_dqn.run.interrupt import RunInterrupted, interrupt_requested
    from cartpole_dqn.tuning.studies import (
        ClaimLock,
        count,
        fail_orphans,
        open_storage,
        open_study,
        worker_identity,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(settings.store)
    study = open_study(storage, settings.study_name, make_sampler(settings, index), make_pruner(settings))
    lock = ClaimLock(settings.store, settings.study_name)
    identity = worker_identity()
    ran = failures = 0
    current: list[int] = []
    stopped: list[BaseException] = []  # why this worker stops early (the first reason)
    for handler in logging.getLogger("optuna").handlers:  # no "trial failed" warnings for those trials
        handler.addFilter(lambda record: not stopped)

    def storage_lost(exc: BaseException) -> StorageLost:
        reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        return StorageLost(f"lost the study storage {settings.store.description}: {reason}")

    previous_hook = threading.excepthook

    storage_errors = (SQLAlchemyError, optuna.exceptions.StorageInternalError)

    def quiet_heartbeat(args: threading.ExceptHookArgs) -> None:  # Optuna's heartbeat thread
        if isinstance(args.exc_value, storage_errors):
            stopped.append(storage_lost(args.exc_value))
        else:
            previous_hook(args)

    threading.excepthook = quiet_heartbeat

    def objective(trial: optuna.Trial) -> float:
        current.append(trial.number)
        for key, value in identity.items():
            trial.set_user_attr(key, value)
        lock.release()  # the trial now exists and carries its owner: other workers may claim
        try:
            return run_trial(trial, settings)
        except RunInterrupted as exc:
            stopped.append(exc)
            raise
        except WriteError as exc:
            stopped.append(exc)
            raise
        except storage_errors as exc:
            stopped.append(storage_lost(exc))
            raise

    def retry(trial: optuna.trial.FrozenTrial) -> None:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)

    try:
        while True:
            if interrupt_requested():
                return ran
            lock.acquire()
            try:
                if settings.store.url is None:
                    fail_orphans(study)
                else:
                    optuna.storages.fail_stale_trials(study)
                finished, running = count(study)
                if finished >= settings.trials:
                    return ran
                if finished + running >= settings.trials:
                    lock.release()
                    time.sleep(2.0)  # others hold the last slots; take over if one of them dies
                    continue
                study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
            finally:
                lock.release()
            ran += 1
            last = study.get_trials(deepcopy=False)[current[-1]]  # this worker's trial (others may be newer)
            if stopped or interrupt_requested():
                if last.state == optuna.trial.TrialState.FAIL:  # stopped mid-trial: the next sweep re-runs it
                    retry(last)
                if stopped and not isinstance(stopped[0], RunInterrupted):
                    raise stopped[0]
                return ran
            if settings.progress:
                from cartpole_dqn.tuning.progress import trial_line

                print(trial_line(study, last, settings), file=sys.stderr, flush=True)
            failures = failures + 1 if last.state == optuna.trial.TrialState.FAIL else 0
            if failures >= 3:
                reason = last.system_attrs.get("fail_reason", "see the trial's logs")
                raise RuntimeError(f"three trials in a row failed; last failure: {reason}")
    except Exception as exc:
        lost = next((e for e in stopped if isinstance(e, StorageLost)), None)
        if lost is None and settings.store.url is not None and not reachable(storage):
            lost = storage_lost(exc)
        if lost is None:
            raise
        raise lost from None  # between trials, or while Optuna recorded a trial's end
    finally:
        threading.excepthook = previous_hook


def reachable(storage: Any) -> bool:
    """Whether the study storage still answers (a cheap query)."""
    try:
        storage.get_all_studies()
    except Exception:
        return False
    return True


STORAGE_LOST = 75  # a worker's exit status when the storage went away (EX_TEMPFAIL)


class SweepInterrupted(Exception):
    """The sweep stopped on a signal (Ctrl-C or SIGTERM); finished trials are kept, stopped ones re-run."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


def worker_process(settings: SweepSettings, index: int, prog: str, parent: int) -> None:
    """A spawned worker process: tied to its parent (see :mod:`cartpole_dqn.run.children`), a first
    SIGTERM or SIGINT stops its trial at the next env step and leaves it to be re-run, and the same
    one-line error handling as the CLI."""
    import signal

    from cartpole_dqn.cli import run_cli
    from cartpole_dqn.run.children import follow_parent
    from cartpole_dqn.run.interrupt import request_stop_once

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop_once)
    follow_parent(parent)

    from cartpole_dqn.errors import StorageLost

    def run(_argv: object) -> int:
        try:
            worker(settings, index)
        except StorageLost:
            return STORAGE_LOST  # the parent says it once, for every worker
        return 0

    sys.exit(run_cli(prog, run))


def run_sweep(settings: SweepSettings, workers: int, prog: str) -> float:
    """Run the sweep with ``workers`` processes (or in this one); returns its wall time in seconds.

    The first Ctrl-C or SIGTERM asks every worker to stop its trial at the next env step (a stopped
    trial is failed and enqueued again, so the next run of the command re-runs it) and then raises
    :class:`SweepInterrupted`; a second one kills the workers at once."""
    import multiprocessing as mp
    import os
    import signal

    from cartpole_dqn.run.children import signal_all, stop_signals
    from cartpole_dqn.run.interrupt import checkpoint_on_sigint

    start = time.perf_counter()
    if workers == 1:
        with checkpoint_on_sigint((signal.SIGINT, signal.SIGTERM)):
            worker(settings, 0)
            from cartpole_dqn.run.interrupt import interrupt_requested

            if interrupt_requested():
                raise SweepInterrupted(signal.SIGINT)
        return time.perf_counter() - start
    context = mp.get_context("spawn")
    processes = [
        context.Process(target=worker_process, args=(settings, i, prog, os.getpid())) for i in range(workers)
    ]

    def pids() -> list[int]:
        return [p.pid for p in processes if p.pid is not None and p.exitcode is None]

    with stop_signals(
        on_first=lambda _signum: signal_all(pids(), signal.SIGTERM),
        on_second=lambda: signal_all(pids(), signal.SIGKILL),
    ) as stop:
        for process in processes:
            process.start()
            if stop.signum is not None:  # stopped while starting: the new one stops too
                signal_all(pids(), signal.SIGTERM)
        for process in processes:
            process.join()
    if stop.signum is not None:
        raise SweepInterrupted(stop.signum)
    if any(p.exitcode == STORAGE_LOST for p in processes):
        from cartpole_dqn.errors import StorageLost

        raise StorageLost(
            f"lost the study storage {settings.store.description} during the sweep; finished trials are "
            "kept: run the same command again once it is back"
        )
    bad = [p.exitcode for p in processes if p.exitcode != 0]
    if bad:
        print(f"{prog}: warning: {len(bad)} worker(s) exited with status {bad}", file=sys.stderr)
    return time.perf_counter() - start
