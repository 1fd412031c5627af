"""``python -m cartpole_dqn.tune --trials 50``: an Optuna sweep over the run config.

Each trial is an ordinary training run (the same factory, solve callback and artifacts as
``train``) whose evaluations are reported to Optuna for pruning. ``--trials N`` is the total
number of finished (complete + pruned) trials the study ends with, across reruns and workers:
re-running the same command resumes the study. The sweep itself lives in
:mod:`cartpole_dqn.tuning`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cartpole_dqn.cli import OneLineParser, run_cli
from cartpole_dqn.config import integer, load_config, resolve_config_path
from cartpole_dqn.errors import UsageError
from cartpole_dqn.tuning.space import SPACES
from cartpole_dqn.tuning.sweep import PRUNERS, SAMPLERS, SweepSettings

PROG = "python -m cartpole_dqn.tune"
FLAGS = {"storage": "--storage", "study_name": "--study-name"}


def build_parser(prog: str = PROG) -> OneLineParser:
    parser = OneLineParser(prog=prog, description="Optuna sweep over the DQN run config.")
    parser.add_argument(
        "--trials", type=integer, default=50, help="finished trials the study must end with (50)"
    )
    parser.add_argument(
        "--seeds-per-trial",
        type=integer,
        default=3,
        metavar="K",
        help="tuning seeds each trial trains on, the same for every trial; its value is the mean of "
        "its per-seed values (3; --pruner halving/wilcoxon: up to 2K)",
    )
    parser.add_argument("--study-name", default=None, help="study name (default: cartpole-dqn-<space>)")
    parser.add_argument(
        "--storage",
        default=None,
        help="RDB URL, e.g. postgresql+psycopg2://user:pw@host/db "
        "(default: the embedded journal file <output-dir>/journal.log)",
    )
    parser.add_argument(
        "--workers", type=integer, default=os.cpu_count() or 1, help="worker processes (CPU cores)"
    )
    parser.add_argument("--space", choices=SPACES, default="core", help="search space (core)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="sampler (tpe, seeded by --seed)")
    parser.add_argument(
        "--pruner",
        choices=PRUNERS,
        default="median",
        help="median: Optuna's median pruner within runs, plus the across-seed rule; halving: also "
        "successive halving over seeds (the top third after K seeds earn K more); wilcoxon: up to 2K "
        "seeds, a trial stops once significantly worse than the best; none: no pruning within runs, only "
        "the across-seed rule (a trial that can no longer solve all its seeds stops once another has) "
        "(default: median)",
    )
    parser.add_argument(
        "--trial-eval-freq",
        type=integer,
        default=None,
        metavar="N",
        help="training steps between evaluations inside trials (default: the base config's eval_freq); "
        "best.yaml and the selection runs keep the base config's",
    )
    parser.add_argument(
        "--seed", type=integer, default=0, help="sampler seed; also picks the trials' training seeds"
    )
    parser.add_argument(
        "--total-timesteps",
        "--timesteps",
        dest="timesteps",
        type=integer,
        default=None,
        help="per-trial budget (default: config, 50,000)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="base config: a path or a name in experiments/configs (default: default)",
    )
    parser.add_argument(
        "--env-id", "--env", dest="env", default=None, help="env id (default: the base config's)"
    )
    parser.add_argument("--output-dir", type=Path, default=Path("experiments/tuning"), help="study artifacts")
    parser.add_argument("--log-dir", type=Path, default=Path("tensorboard_logs"), help="TensorBoard root")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--report",
        action="store_true",
        help="show what the study recorded (counts, top trials, the pick and its selection table); "
        "trains nothing and writes nothing",
    )
    mode.add_argument(
        "--select",
        action="store_true",
        help="(re-)run the pick on a finished study: re-trains what the study has not recorded, says how "
        "many runs and about how long before it starts; a different previous best.yaml is kept beside it",
    )
    parser.add_argument(
        "--validate-seeds",
        type=integer,
        default=None,
        metavar="N",
        help="re-train the base config and the sweep's top 3 on N fresh seeds; best.yaml is the one that "
        "beats the base paired by seed, else the base (default: the study's recorded N, else 20; 0: the "
        "sweep's best, optimistic estimate)",
    )
    parser.add_argument(
        "--selection-curves",
        action="store_true",
        help="write the selection re-trainings' TensorBoard curves (under <log-dir>/tune/<study>/selection)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no per-trial progress lines on stderr")
    parser.add_argument("--heartbeat-interval", type=integer, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--grace-period", type=integer, default=30, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.seeds_per_trial < 1:
        raise UsageError(f"--seeds-per-trial must be >= 1, got {args.seeds_per_trial}")
    from cartpole_dqn.tuning.seeds import MAX_VALIDATION_SEEDS

    if args.validate_seeds is not None and not 0 <= args.validate_seeds <= MAX_VALIDATION_SEEDS:
        raise UsageError(
            f"--validate-seeds must be in [0, {MAX_VALIDATION_SEEDS}], got {args.validate_seeds}"
        )
    if args.trial_eval_freq is not None and args.trial_eval_freq < 1:
        raise UsageError(f"--trial-eval-freq must be >= 1, got {args.trial_eval_freq}")
    overrides: dict[str, Any] = {}
    if args.timesteps is not None:
        overrides["total_timesteps"] = args.timesteps
    if args.env is not None:
        overrides.update(env_id=args.env, threshold=None)
    base = load_config(None if args.config is None else resolve_config_path(args.config), overrides)
    if base.eval_freq == 0:
        raise UsageError(
            "the tuner scores and prunes trials on their evaluations: eval_freq must be >= 1, got 0"
        )
    study_name = args.study_name or f"cartpole-dqn-{args.space}"
    if not study_name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(f"invalid --study-name '{study_name}': use letters, digits, '.', '_' and '-'")

    import optuna

    from cartpole_dqn.run.envs import env_info_of
    from cartpole_dqn.run.multiseed import RunsInterrupted
    from cartpole_dqn.tuning.flow import pick_again, sweep_then_pick
    from cartpole_dqn.tuning.report import report
    from cartpole_dqn.tuning.studies import StoreSettings, count, open_storage, open_study
    from cartpole_dqn.tuning.sweep import SweepInterrupted

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started_at = time.time()
    env_info_of(base)
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
        seeds_per_trial=args.seeds_per_trial,
        trial_eval_freq=args.trial_eval_freq,
        progress=not args.no_progress,
        started_at=started_at,
    )
    storage = open_storage(store)  # fail fast, one line, on a bad storage URL or journal
    command = " ".join([prog, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    try:
        if args.report:
            report(settings, args.validate_seeds)
        elif args.select:
            pick_again(settings, args.workers, args.validate_seeds, args.selection_curves)
        else:
            sweep_then_pick(settings, args.workers, prog, args.validate_seeds, args.selection_curves)
    except SweepInterrupted as exc:
        finished = count(open_study(storage, study_name))[0]
        print(
            f"{prog}: interrupted: {finished} of {args.trials} trials finished and kept, stopped trials will "
            f"run again; resume with: {command}",
            file=sys.stderr,
        )
        return 128 + exc.signum
    except RunsInterrupted as exc:
        print(
            f"{prog}: interrupted: {exc.done} of {exc.total} selection runs finished and kept in the study; "
            f"resume with: {command}",
            file=sys.stderr,
        )
        return 128 + exc.signum
    return 0


def cli(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """The command line: ``main`` with one-line errors and exit statuses."""
    return run_cli(prog, lambda args: main(args, prog), argv, flags=FLAGS)


if __name__ == "__main__":
    sys.exit(cli())
