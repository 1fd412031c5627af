"""``python -m cartpole_dqn.tune --trials 50``: an Optuna sweep over the run config.

Each trial is an ordinary training run (the same factory, solve callback and artifacts as
``train``) whose evaluations are reported to Optuna for pruning. ``--trials N`` is the total
number of finished (complete + pruned) trials the study ends with, across reruns and workers:
re-running the same command resumes the study.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cartpole_dqn.cli import OneLineParser, run_cli
from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.errors import UsageError

PROG = "python -m cartpole_dqn.tune"
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none", "halving")
# Seeds in three disjoint ranges, by construction: benchmarks start at 1,000 (below the first),
# trials train on [10,000, 900,000), and --validate-seeds re-trains on 900,000 and up.
TUNING_SEED_START = 10_000
VALIDATION_SEED_START = 900_000
_SWEEP_STRIDE = 10_000  # --seed s starts its trials s * 10,000 further on (wrapping inside the range)


def trial_seed(sweep_seed: int, trial_number: int) -> int:
    """The training seed of trial ``trial_number`` of a sweep run with ``--seed sweep_seed``."""
    span = VALIDATION_SEED_START - TUNING_SEED_START
    return TUNING_SEED_START + (sweep_seed * _SWEEP_STRIDE + trial_number) % span


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
    store: Any  # StoreSettings
    output_dir: Path
    log_dir: Path

    @property
    def study_dir(self) -> Path:
        return self.output_dir / self.study_name


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description="Optuna sweep over the DQN run config.")
    parser.add_argument("--trials", type=int, default=50, help="finished trials the study must end with (50)")
    parser.add_argument("--study-name", default=None, help="study name (default: cartpole-dqn-<space>)")
    parser.add_argument(
        "--storage",
        default=None,
        help="RDB URL, e.g. postgresql+psycopg2://user:pw@host/db "
        "(default: the embedded journal file <output-dir>/journal.log)",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (CPU cores)"
    )
    parser.add_argument("--space", choices=("core", "full"), default="core", help="search space (core)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="sampler (tpe, seeded by --seed)")
    parser.add_argument("--pruner", choices=PRUNERS, default="median", help="pruner (median)")
    parser.add_argument(
        "--seed", type=int, default=0, help="sampler seed; also picks the trials' training seeds"
    )
    parser.add_argument(
        "--timesteps", type=int, default=None, help="per-trial budget (default: config, 50,000)"
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="base config (default: the built-in default)"
    )
    parser.add_argument("--env", default=None, help="env id (default: the base config's)")
    parser.add_argument("--output-dir", type=Path, default=Path("experiments/tuning"), help="study artifacts")
    parser.add_argument("--log-dir", type=Path, default=Path("tensorboard_logs"), help="TensorBoard root")
    parser.add_argument("--report", action="store_true", help="only report on an existing study")
    parser.add_argument(
        "--validate-seeds",
        type=int,
        default=0,
        metavar="K",
        help="retrain the best config on K seeds the sweep never used",
    )
    parser.add_argument("--heartbeat-interval", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--grace-period", type=int, default=30, help=argparse.SUPPRESS)
    return parser


def make_sampler(settings: SweepSettings, worker: int) -> Any:
    import optuna

    seed = settings.seed * 1000 + worker  # each worker its own stream, reproducible from --seed
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)


def make_pruner(settings: SweepSettings) -> Any:
    import optuna

    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=settings.base.eval_freq * 3)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=settings.base.eval_freq * 2)


def run_trial(trial: Any, settings: SweepSettings) -> float:
    """Train one trial's config; report every evaluation; prune when the pruner says so."""
    import optuna

    from cartpole_dqn.artifacts import allocate_run
    from cartpole_dqn.callbacks import SolveState
    from cartpole_dqn.envs import check_env
    from cartpole_dqn.errors import DivergenceError
    from cartpole_dqn.runner import run_training
    from cartpole_dqn.search_space import suggest
    from cartpole_dqn.tuning_objective import CurveScore, reward_floor

    seed = trial_seed(settings.seed, trial.number)
    config = settings.base.replace(**suggest(trial, settings.space), seed=seed)
    env_info = check_env(config)
    config = config.replace(threshold=env_info.threshold)
    score = CurveScore(
        config.total_timesteps,
        config.eval_freq,
        env_info.threshold,
        reward_floor(env_info.threshold, env_info.max_episode_steps),
    )
    paths = allocate_run(
        settings.study_dir / "trials",
        settings.log_dir / "tune" / settings.study_name,
        None,
        f"trial-{trial.number}",
    )
    trial.set_user_attr("seed", seed)
    trial.set_user_attr("run_dir", str(paths.run_dir))
    pruned = False

    def on_evaluation(state: SolveState) -> bool:
        nonlocal pruned
        value = score.value(state)
        step = state.history[-1].step
        trial.report(value, step)
        if state.solved:
            for later in score.remaining_steps(step):
                trial.report(value, later)
            return True
        if trial.should_prune():
            pruned = True
            return False
        return True

    try:
        results = run_training(config, env_info, paths, on_evaluation=on_evaluation)
    except DivergenceError as exc:
        trial.set_user_attr("diverged", str(exc))
        raise optuna.TrialPruned(str(exc)) from None
    for key in ("solved", "steps_to_solve", "wall_to_solve_s", "eval_mean", "stays_solved", "total_steps"):
        trial.set_user_attr(key, results[key])
    if pruned:
        raise optuna.TrialPruned(f"pruned at step {results['total_steps']}")
    return score.value_of(results["steps_to_solve"], [e["mean"] for e in results["evaluations"]])


def worker(settings: SweepSettings, index: int) -> int:
    """Claim and run trials until the study has ``settings.trials`` finished ones; returns trials run."""
    import optuna

    from cartpole_dqn.studies import ClaimLock, count, fail_orphans, open_storage, open_study, worker_identity

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


def _worker_entry(settings: SweepSettings, index: int) -> None:
    """A worker process: the same one-line error handling as the CLI."""

    def run(_argv: Sequence[str] | None) -> int:
        worker(settings, index)
        return 0

    sys.exit(run_cli(PROG, run))


def report(settings: SweepSettings, validate_seeds: int) -> None:
    import optuna

    from cartpole_dqn.envs import check_env
    from cartpole_dqn.studies import open_storage
    from cartpole_dqn.tuning_report import state_counts, top_table, write_plots, write_summary

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(settings.store)
    try:
        study = optuna.load_study(study_name=settings.study_name, storage=storage)
    except KeyError:
        raise UsageError(f"no study named '{settings.study_name}' in {settings.store.description}") from None
    env_info = check_env(settings.base)
    counts = state_counts(study)
    print(
        f"study {study.study_name} ({settings.store.description}): "
        f"{counts['complete'] + counts['pruned']} finished ({counts['complete']} complete, "
        f"{counts['pruned']} pruned), {counts['fail']} failed, {counts['running']} running, "
        f"{counts['waiting']} waiting"
    )
    if counts["complete"] == 0:
        print("no completed trial yet: nothing to rank")
        return
    print(top_table(study, env_info.threshold, env_info.max_return))
    summary = write_summary(study, settings.study_dir, settings.base)
    plots = write_plots(study, settings.study_dir / "plots")
    print(
        f"best trial {summary['best_trial']} (value {summary['best_value']:.4f}): "
        f"{settings.study_dir / 'best.yaml'}"
    )
    for plot in plots:
        print(f"plot: {plot}")
    if validate_seeds > 0:
        validate(settings, validate_seeds, env_info.threshold)


def validate(settings: SweepSettings, count: int, threshold: float) -> None:
    from cartpole_dqn.config import load_config
    from cartpole_dqn.multiseed import RunSpec, run_many, summarize

    best = load_config(settings.study_dir / "best.yaml")
    seeds = validation_seeds(count)
    specs = [
        RunSpec(
            "validate",
            best.replace(seed=seed),
            settings.study_dir / "validation",
            settings.log_dir / "tune" / settings.study_name / "validation",
        )
        for seed in seeds
    ]
    runs = run_many(specs, jobs=min(os.cpu_count() or 1, count))
    s = summarize(runs, budget=best.total_timesteps)
    steps = "-" if s["steps_median"] is None else f"{s['steps_median']:,.0f}"
    print(
        f"validation on seeds {seeds[0]}..{seeds[-1]} (never used by the sweep): "
        f"solved {s['solved']}/{s['runs']}, median steps to solve {steps}, "
        f"stays solved {s['stays_solved']}/{s['runs']} (threshold {threshold:g})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.validate_seeds < 0:
        raise UsageError(f"--validate-seeds must be >= 0, got {args.validate_seeds}")
    overrides: dict[str, Any] = {}
    if args.timesteps is not None:
        overrides["total_timesteps"] = args.timesteps
    if args.env is not None:
        overrides["env_id"] = args.env
        overrides["threshold"] = None
    base = load_config(args.config, overrides)

    from cartpole_dqn.envs import check_env
    from cartpole_dqn.studies import StoreSettings, open_storage, open_study

    check_env(base)
    study_name = args.study_name or f"cartpole-dqn-{args.space}"
    if not study_name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(f"invalid --study-name '{study_name}': use letters, digits, '.', '_' and '-'")
    store = StoreSettings(
        args.storage, args.output_dir / "journal.log", args.heartbeat_interval, args.grace_period
    )
    settings = SweepSettings(
        base,
        study_name,
        args.trials,
        args.space,
        args.sampler,
        args.pruner,
        args.seed,
        store,
        args.output_dir,
        args.log_dir,
    )
    storage = open_storage(store)  # fail fast, one line, on a bad storage URL or journal
    if not args.report:
        open_study(storage, study_name)  # ... and on a study of the same name with another direction
        start = time.perf_counter()
        if args.workers == 1:
            worker(settings, 0)
        else:
            context = mp.get_context("spawn")
            processes = [
                context.Process(target=_worker_entry, args=(settings, i)) for i in range(args.workers)
            ]
            for process in processes:
                process.start()
            for process in processes:
                process.join()
            bad = [p.exitcode for p in processes if p.exitcode != 0]
            if bad:
                print(f"{PROG}: warning: {len(bad)} worker(s) exited with status {bad}", file=sys.stderr)
        print(f"sweep wall time: {time.perf_counter() - start:.1f} s with {args.workers} worker(s)")
    report(settings, args.validate_seeds)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
