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
    CONFIG,
    FINAL_MODEL,
    RESULTS,
    RunPaths,
    allocate_run,
    default_run_name,
    latest_checkpoint,
    lock_run,
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


CONTINUE_KEYS = ("total_timesteps", "early_stop")  # what may change when a finished run continues


def resume(args: argparse.Namespace) -> int:
    """Continue the run in ``args.resume``: a killed run from its latest checkpoint, or a finished
    run for more steps (``--total-timesteps`` above its budget)."""
    overrides = config_overrides(args)
    run_dir: Path = args.resume
    finished = (run_dir / RESULTS).exists()
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
    if not run_dir.is_dir():
        raise UsageError(f"run folder not found: {run_dir}", about="run_dir")
    lock_run(run_dir)  # one process per run folder at a time
    finished = (run_dir / RESULTS).exists()  # again, now that no other process can finish it
    if finished:
        return continue_finished(args, run_dir, overrides)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise UsageError(f"no checkpoint in {run_dir} to resume from", about="run_dir")
    config = load_config(run_dir / CONFIG)

    from cartpole_dqn.run.checkpoints import read_state

    state = read_state(checkpoint)
    from cartpole_dqn.run.envs import resolve_env  # gymnasium: once the flags are known good

    config, env = resolve_env(config)
    check_device(config.device)
    # The TensorBoard run the checkpoint recorded; a fresh one under --log-dir if that one is gone
    # (a run folder copied from another machine, say).
    tensorboard_dir = state.tensorboard_dir
    if not tensorboard_dir.is_dir():
        tensorboard_dir = args.log_dir / run_dir.name
    paths = RunPaths(run_dir.name, run_dir, tensorboard_dir)
    print(f"resuming {run_dir} at step {state.num_timesteps:,} of {config.total_timesteps:,}", flush=True)

    from cartpole_dqn.run.runner import resume_run

    with checkpoint_on_sigint():
        result = resume_run(
            config, env, paths, checkpoint, progress_bar=not args.no_progress, verbose=int(args.verbose)
        )
    print(training_verdict(result))
    return 0


def continue_finished(args: argparse.Namespace, run_dir: Path, overrides: dict[str, object]) -> int:
    """Train a finished run further: its final weights, a new replay buffer (as rl-baselines3-zoo's
    ``-i``), its evaluation history and wall clock carried on. The previous results and final model
    are kept as ``results-<steps>.json`` and ``final_model-<steps>.zip``."""
    from cartpole_dqn.run.results import RunResult

    previous = RunResult.read(run_dir / RESULTS)
    budget = overrides.get("total_timesteps")
    if not isinstance(budget, int) or budget <= previous.total_steps:
        raise UsageError(
            f"run {run_dir} already finished at step {previous.total_steps:,}; to train it further, "
            f"give --total-timesteps above {previous.total_steps:,}",
            about="run_dir",
        )
    if not (run_dir / FINAL_MODEL).is_file():
        raise UsageError(
            f"run {run_dir} has no final_model.zip (runs of release 0.1 do not); it cannot be continued",
            about="run_dir",
        )
    config = load_config(run_dir / CONFIG, overrides)
    from cartpole_dqn.run.envs import resolve_env

    config, env = resolve_env(config)
    check_device(config.device)
    tensorboard_dir = Path(previous.tensorboard_dir)
    if not tensorboard_dir.is_dir():
        tensorboard_dir = args.log_dir / run_dir.name
    paths = RunPaths(run_dir.name, run_dir, tensorboard_dir)
    print(
        f"continuing {run_dir} from step {previous.total_steps:,} to {config.total_timesteps:,}", flush=True
    )

    from cartpole_dqn.run.runner import continue_run

    with checkpoint_on_sigint():
        result = continue_run(
            config, env, paths, previous, progress_bar=not args.no_progress, verbose=int(args.verbose)
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
