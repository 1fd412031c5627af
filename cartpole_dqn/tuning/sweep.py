"""The sweep: Optuna trials made of ordinary training runs, claimed by any number of workers.

A trial trains its config on the sweep's ``K`` tuning seeds (common to all trials), one after
another, each through the same runner as ``train``, and scores the mean of the per-seed values
(:mod:`cartpole_dqn.tuning.objective`). Pruning, both within a run and across seeds:

1. within a run: every evaluation is reported to Optuna through a ``TrialPruningCallback`` (the
   solve protocol's ``callback_after_eval``, as rl-baselines3-zoo's ``TrialEvalCallback``), at step
   ``seed index * stride + step``, so the pruner compares this trial's run on seed ``i`` with the
   other trials' runs on the same seed at the same step; a run that has not solved and that the
   pruner rejects stops, and so does the trial (a hopeless config is pruned on its first seed);
2. across seeds: after a seed, a trial whose value can no longer reach 1 (what any trial that
   solves all its seeds scores at least) is pruned if the study already has a complete trial at 1
   or above.

A run that solved is never pruned, so a trial that solves all its seeds always completes.
``settings.trials`` is the total number of finished (complete + pruned) trials the study ends
with, across reruns and workers; a trial killed with its worker is failed and re-run whole (all
its seeds), never half-counted. Optuna is imported inside the functions that use it, so the
command line answers without it.
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
PRUNERS = ("median", "none", "halving")


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
        }


def make_sampler(settings: SweepSettings, worker: int) -> optuna.samplers.BaseSampler:
    import optuna

    seed = settings.seed * 1000 + worker  # each worker its own stream, reproducible from --seed
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)


def make_pruner(settings: SweepSettings) -> optuna.pruners.BasePruner:
    import optuna

    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=settings.base.eval_freq * 3)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=settings.base.eval_freq * 2)


def record_settings(study: optuna.Study, settings: SweepSettings) -> None:
    """Record the sweep's base config and space in a new study; refuse to mix other ones into it."""
    recorded = settings.recorded()
    attrs = study.user_attrs
    if "base_config" not in attrs:
        for key, value in recorded.items():
            study.set_user_attr(key, value)
        return
    for key, value in recorded.items():
        had = attrs.get(key, 1 if key == "seeds_per_trial" else None)  # studies before K existed: 1 seed
        if had == value:
            continue
        if key == "space":
            what = f"search space '{had}' (this run: '{value}')"
        elif key == "seeds_per_trial":
            what = f"--seeds-per-trial {had} (this run: {value})"
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
        trial, settings.space, settings.base.algorithm
    )  # first: a trial killed from here on has its params

    from cartpole_dqn.benchmarking.stats import solved_within
    from cartpole_dqn.errors import DivergenceError
    from cartpole_dqn.run.artifacts import allocate_run
    from cartpole_dqn.run.envs import resolve_env
    from cartpole_dqn.run.runner import train_new_run
    from cartpole_dqn.tuning.objective import CurveScore, best_reachable, reward_floor, trial_value
    from cartpole_dqn.tuning.pruning import TrialPruningCallback
    from cartpole_dqn.tuning.seeds import tuning_seeds

    seeds = tuning_seeds(settings.seed, settings.seeds_per_trial)
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
            config, env = resolve_env(settings.base.replace(**overrides, seed=seed))
            score = CurveScore(
                config.total_timesteps,
                config.eval_freq,
                env.threshold,
                reward_floor(env.threshold, env.max_episode_steps),
            )
            paths = allocate_run(runs_root, log_root, None, f"seed-{seed}")
            pruning = TrialPruningCallback(trial, score, offset=index * score.slots * score.eval_freq)
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
            if pruning.pruned:
                outcome = "pruned"
                raise optuna.TrialPruned(f"pruned on seed {seed} at step {result.total_steps}")
            if index + 1 < len(seeds) and best_reachable(values, len(seeds)) < 1.0 and _has_solver(trial):
                outcome = "pruned"
                raise optuna.TrialPruned(
                    f"after {index + 1} of {len(seeds)} seeds its value cannot reach 1 (a solver's)"
                )
        value = trial_value(values)
        trial.set_user_attr("value_per_seed", values)
        return value
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


def _has_solver(trial: optuna.Trial) -> bool:
    from optuna.trial import TrialState

    complete = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return any(t.value is not None and t.value >= 1.0 for t in complete)


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
    """Claim and run trials until the study has ``settings.trials`` finished ones; returns trials run."""
    import optuna

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

    def objective(trial: optuna.Trial) -> float:
        current.append(trial.number)
        for key, value in identity.items():
            trial.set_user_attr(key, value)
        lock.release()  # the trial now exists and carries its owner: other workers may claim
        return run_trial(trial, settings)

    while True:
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
        if settings.progress:
            from cartpole_dqn.tuning.progress import trial_line

            print(trial_line(study, last, settings), file=sys.stderr, flush=True)
        failures = failures + 1 if last.state == optuna.trial.TrialState.FAIL else 0
        if failures >= 3:
            reason = last.system_attrs.get("fail_reason", "see the trial's logs")
            raise RuntimeError(f"three trials in a row failed; last failure: {reason}")


def worker_process(settings: SweepSettings, index: int, prog: str) -> None:
    """A spawned worker process: the same one-line error handling as the CLI."""
    from cartpole_dqn.cli import run_cli

    def run(_argv: object) -> int:
        worker(settings, index)
        return 0

    sys.exit(run_cli(prog, run))


def run_sweep(settings: SweepSettings, workers: int, prog: str) -> float:
    """Run the sweep with ``workers`` processes (or in this one); returns its wall time in seconds."""
    import multiprocessing as mp

    start = time.perf_counter()
    if workers == 1:
        worker(settings, 0)
    else:
        context = mp.get_context("spawn")
        processes = [context.Process(target=worker_process, args=(settings, i, prog)) for i in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        bad = [p.exitcode for p in processes if p.exitcode != 0]
        if bad:
            print(f"{prog}: warning: {len(bad)} worker(s) exited with status {bad}", file=sys.stderr)
    return time.perf_counter() - start
