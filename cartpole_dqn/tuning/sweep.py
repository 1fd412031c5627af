"""The sweep: Optuna trials that are ordinary training runs, claimed by any number of workers.

Each trial trains its config through the same runner as ``train``; the solve protocol reports
every evaluation to Optuna through a ``TrialPruningCallback`` (its ``callback_after_eval``),
which stops a trial the pruner rejects, as rl-baselines3-zoo's ``TrialEvalCallback`` does.
``settings.trials`` is the total number of finished (complete + pruned) trials the study ends
with, across reruns and workers. Optuna is imported inside the functions that use it, so the
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

# Seeds in three disjoint ranges, by construction: benchmarks start at 1,000 (below the first),
# trials train on [10,000, 900,000), and --validate-seeds re-trains on 900,000 and up.
TUNING_SEED_START = 10_000
VALIDATION_SEED_START = 900_000
SWEEP_SEED_STRIDE = 10_000  # --seed s starts its trials s * 10,000 further on (wrapping in the range)


def trial_seed(sweep_seed: int, trial_number: int) -> int:
    """The training seed of trial ``trial_number`` of a sweep run with ``--seed sweep_seed``."""
    span = VALIDATION_SEED_START - TUNING_SEED_START
    return TUNING_SEED_START + (sweep_seed * SWEEP_SEED_STRIDE + trial_number) % span


def validation_seeds(count: int) -> list[int]:
    """The seeds ``--validate-seeds`` re-trains the best config on: never a trial's seed."""
    return list(range(VALIDATION_SEED_START, VALIDATION_SEED_START + count))


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

    @property
    def study_dir(self) -> Path:
        return self.output_dir / self.study_name

    def recorded(self) -> dict[str, Any]:
        """What the study records about how its trials run (rerunning it with other values is refused)."""
        return {"base_config": self.base.to_dict(), "space": self.space}


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
        if attrs.get(key) == value:
            continue
        if key == "space":
            what = f"search space '{attrs.get(key)}' (this run: '{value}')"
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
    """Train one trial's config; report every evaluation; prune when the pruner says so."""
    import optuna

    from cartpole_dqn.errors import DivergenceError
    from cartpole_dqn.run.artifacts import allocate_run
    from cartpole_dqn.run.envs import resolve_env
    from cartpole_dqn.run.runner import train_new_run
    from cartpole_dqn.tuning.objective import CurveScore, reward_floor
    from cartpole_dqn.tuning.pruning import TrialPruningCallback
    from cartpole_dqn.tuning.space import suggest

    seed = trial_seed(settings.seed, trial.number)
    config, env = resolve_env(settings.base.replace(**suggest(trial, settings.space), seed=seed))
    score = CurveScore(
        config.total_timesteps,
        config.eval_freq,
        env.threshold,
        reward_floor(env.threshold, env.max_episode_steps),
    )
    paths = allocate_run(
        settings.study_dir / "trials",
        settings.log_dir / "tune" / settings.study_name,
        None,
        f"trial-{trial.number}",
    )
    trial.set_user_attr("seed", seed)
    trial.set_user_attr("run_dir", str(paths.run_dir))
    pruning = TrialPruningCallback(trial, score)
    try:
        result = train_new_run(config, env, paths, callback_after_eval=pruning)
    except DivergenceError as exc:
        trial.set_user_attr("diverged", str(exc))
        raise optuna.TrialPruned(str(exc)) from None
    for key in ("solved", "steps_to_solve", "wall_to_solve_s", "eval_mean", "stays_solved", "total_steps"):
        trial.set_user_attr(key, getattr(result, key))
    if pruning.pruned:
        raise optuna.TrialPruned(f"pruned at step {result.total_steps}")
    return score.value_of(result.steps_to_solve, [e.mean for e in result.evaluations])


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

    def objective(trial: optuna.Trial) -> float:
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
        last = study.get_trials(deepcopy=False)[-1]
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
