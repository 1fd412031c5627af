"""``python -m cartpole_dqn.train``: train DQN until solved (or the budget ends) and report the verdict."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cartpole_dqn.artifacts import allocate_run, default_run_name
from cartpole_dqn.cli import OneLineParser, add_config_flags, config_overrides, run_cli
from cartpole_dqn.config import load_config
from cartpole_dqn.devices import check_device
from cartpole_dqn.envs import check_env
from cartpole_dqn.errors import UsageError
from cartpole_dqn.report import training_verdict

PROG = "python -m cartpole_dqn.train"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        description="Train SB3 DQN (with our plug-ins) on a Gymnasium env until it is solved.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML run config, e.g. experiments/configs/NAME.yaml (default: the built-in default config)",
    )
    parser.add_argument("--run-name", default=None, help="run folder name (default: <env>-seed<N>-<time>)")
    parser.add_argument("--output-dir", type=Path, default=Path("experiments/runs"), help="artifact root")
    parser.add_argument("--log-dir", type=Path, default=Path("tensorboard_logs"), help="TensorBoard root")
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue a killed run from its last checkpoint (with its saved config)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="print every evaluation")
    add_config_flags(parser)
    return parser


def resume(args: argparse.Namespace) -> int:
    """Continue the run in ``args.resume`` from its latest checkpoint."""
    from cartpole_dqn.artifacts import RunPaths
    from cartpole_dqn.checkpoints import latest_checkpoint, read_state
    from cartpole_dqn.runner import run_training

    conflicts = [
        flag
        for flag, given in (
            ("--config", args.config is not None),
            ("--run-name", args.run_name is not None),
            ("config flags", bool(config_overrides(args))),
        )
        if given
    ]
    if conflicts:
        raise UsageError(
            f"--resume continues a run with its saved config; it cannot be combined with "
            f"{', '.join(conflicts)}"
        )
    run_dir: Path = args.resume
    if not run_dir.is_dir():
        raise UsageError(f"run folder not found: {run_dir}")
    if (run_dir / "results.json").exists():
        raise UsageError(f"run {run_dir} already finished (results.json exists); nothing to resume")
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise UsageError(f"no checkpoint in {run_dir} to resume from")
    config = load_config(run_dir / "config.yaml")
    check_device(config.device)
    env_info = check_env(config)
    state = read_state(checkpoint)
    paths = RunPaths(run_dir.name, run_dir, Path(state["tensorboard_dir"]))
    print(f"resuming {run_dir} at step {state['num_timesteps']:,} of {config.total_timesteps:,}", flush=True)
    results = run_training(
        config,
        env_info,
        paths,
        progress_bar=not args.no_progress,
        verbose=int(args.verbose),
        resume_from=checkpoint,
    )
    print(training_verdict(results))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.resume is not None:
        return resume(args)
    config = load_config(args.config, config_overrides(args))
    check_device(config.device)
    env_info = check_env(config)
    config = config.replace(threshold=env_info.threshold)  # the saved config records what decided

    paths = allocate_run(
        args.output_dir, args.log_dir, args.run_name, default_run_name(config.env_id, config.seed)
    )
    from cartpole_dqn.runner import run_training  # heavy imports only once the input is known good

    results = run_training(
        config, env_info, paths, progress_bar=not args.no_progress, verbose=int(args.verbose)
    )
    print(training_verdict(results))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
