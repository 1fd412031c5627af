"""``python -m cartpole_dqn.train``: train DQN until solved (or the budget ends) and report the verdict."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from cartpole_dqn.cli import OneLineParser, add_config_flags, config_overrides, run_cli
from cartpole_dqn.config import RunConfig, config_flag, load_config, resolve_config_path
from cartpole_dqn.errors import UsageError
from cartpole_dqn.run.artifacts import (
    allocate_run,
    default_run_name,
)
from cartpole_dqn.run.devices import check_device
from cartpole_dqn.run.interrupt import RunInterrupted, checkpoint_on_sigint
from cartpole_dqn.run.verdict import training_verdict

PROG = "python -m cartpole_dqn.train"
FLAGS = {
    "run_name": "--run-name",
    "runs_root": "--output-dir",
    "log_root": "--log-dir",
    "run_dir": "--resume",
    "threshold": "--threshold",
    "device": "--device",
}


def build_parser(prog: str = PROG) -> OneLineParser:
    parser = OneLineParser(
        prog=prog,
        description="Train SB3 DQN (with our plug-ins) on a Gymnasium env until it is solved.",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="YAML run config: a path, or NAME for experiments/configs/NAME.yaml (default: the built-in "
        "default config)",
    )
    parser.add_argument("--run-name", default=None, help="run folder name (default: <env>-seed<N>-<time>)")
    parser.add_argument(
        "--output-dir",
        "--runs-dir",
        dest="output_dir",
        type=Path,
        default=Path("experiments/runs"),
        help="where run folders go (default experiments/runs; --runs-dir as in benchmark)",
    )
    parser.add_argument("--log-dir", type=Path, default=Path("tensorboard_logs"), help="TensorBoard root")
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue a killed run from its last checkpoint (with its saved config), or a finished "
        "run for more steps (with a larger --total-timesteps)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="print every evaluation")
    add_config_flags(parser)
    return parser


def resume(args: argparse.Namespace) -> int:
    """``--resume RUN_DIR``: a killed run from its latest checkpoint, or a finished run for more steps
    (``--total-timesteps`` above its budget); see :mod:`cartpole_dqn.run.resume`."""
    from cartpole_dqn.run.resume import CONTINUE_KEYS, carry_on_run, is_finished

    overrides = config_overrides(args)
    run_dir: Path = args.resume
    finished = is_finished(run_dir)
    extra = sorted(k for k in overrides if not (finished and k in CONTINUE_KEYS))
    conflicts = [
        flag
        for flag, given in (
            ("--config", args.config is not None),
            ("--run-name", args.run_name is not None),
            ("config flags (" + ", ".join(config_flag(k) for k in extra) + ")", bool(extra)),
        )
        if given
    ]
    if conflicts:
        raise UsageError(
            "--resume continues a run with its saved config (a finished one also takes a larger "
            "--total-timesteps and --early-stop/--no-early-stop); it cannot be combined with "
            + ", ".join(conflicts)
        )
    result = carry_on_run(
        run_dir,
        overrides,
        args.log_dir,
        progress_bar=not args.no_progress,
        verbose=int(args.verbose),
        announce=lambda line: print(line, flush=True),
    )
    print(training_verdict(result))
    return 0


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.resume is not None:
        return resume(args)
    config = load_config(
        None if args.config is None else resolve_config_path(args.config), config_overrides(args)
    )
    from cartpole_dqn.run.envs import resolve_env  # gymnasium: once the flags are known good

    config, env = resolve_env(config)
    check_device(config.device)
    paths = allocate_run(
        args.output_dir, args.log_dir, args.run_name, default_run_name(config.env_id, config.seed)
    )

    from cartpole_dqn.run.runner import train_new_run  # torch and SB3 only once the input is known good

    if config.total_timesteps <= config.learning_starts:
        print(
            f"{prog}: warning: total_timesteps {config.total_timesteps:,} <= learning_starts "
            f"{config.learning_starts:,}: no gradient step will run, the policy stays untrained",
            file=sys.stderr,
        )

    with checkpoint_on_sigint():
        result = train_new_run(
            config, env, paths, progress_bar=not args.no_progress, verbose=int(args.verbose)
        )
    print(training_verdict(result))
    print_resolution_note(config)
    return 0


def print_resolution_note(config: RunConfig) -> None:
    """Say so when steps to solve were not measured at the protocol's 1,000-step resolution."""
    if config.coarse_evaluation:
        when = "only at the budget" if config.eval_freq == 0 else f"every {config.eval_freq:,} steps"
        print(
            f"  note              evaluated {when}: steps to solve is not measured at the protocol's "
            "1,000-step resolution"
        )


def cli(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """The command line: ``main`` with one-line errors and exit statuses; Ctrl-C checkpoints the run
    and prints the command that continues it (exit 130)."""

    def run(args: Sequence[str] | None) -> int:
        try:
            return main(args, prog)
        except RunInterrupted as stop:
            where = f"checkpoint saved at step {stop.step:,}" if stop.checkpoint else "no checkpoint"
            command = f"{prog} --resume {shlex.quote(str(stop.run_dir))}"
            print(f"{prog}: interrupted: {where}; continue with: {command}", file=sys.stderr)
            return 130

    return run_cli(prog, run, argv, flags=FLAGS)


if __name__ == "__main__":
    sys.exit(cli())
