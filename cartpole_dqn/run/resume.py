"""Carrying on with an existing run folder: a killed run from its latest checkpoint, or a finished
run for more steps (rl-baselines3-zoo's ``-i``). What ``train --resume`` does below its flags."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.errors import UsageError
from cartpole_dqn.run.artifacts import CONFIG, FINAL_MODEL, RESULTS, RunPaths, latest_checkpoint, lock_run
from cartpole_dqn.run.devices import check_device
from cartpole_dqn.run.interrupt import checkpoint_on_sigint
from cartpole_dqn.run.results import RunResult

if TYPE_CHECKING:
    from cartpole_dqn.run.envs import EnvInfo

CONTINUE_KEYS = ("total_timesteps", "early_stop")  # what may change when a finished run continues


def is_finished(run_dir: Path) -> bool:
    return (run_dir / RESULTS).exists()


def carry_on_run(
    run_dir: Path,
    overrides: Mapping[str, Any],
    log_dir: Path,
    *,
    progress_bar: bool,
    verbose: int,
    announce: Callable[[str], None] = print,
) -> RunResult:
    """Continue ``run_dir``: from its checkpoint if it was killed, else (finished) for more steps
    with ``overrides`` (only :data:`CONTINUE_KEYS`). One process per run folder at a time."""
    if not run_dir.is_dir():
        raise UsageError(f"run folder not found: {run_dir}", about="run_dir")
    lock_run(run_dir)
    if is_finished(run_dir):  # again, now that no other process can finish it
        return continue_finished(run_dir, overrides, log_dir, progress_bar, verbose, announce)
    return resume_checkpointed(run_dir, log_dir, progress_bar, verbose, announce)


def _prepare(
    config: RunConfig, run_dir: Path, recorded_tensorboard_dir: Path, log_dir: Path
) -> tuple[RunConfig, EnvInfo, RunPaths]:
    """The env (checked now that the input is known good), the device, and the run's paths: its
    recorded TensorBoard run, or a fresh one under ``log_dir`` if that one is gone (a run folder
    copied from another machine, say)."""
    from cartpole_dqn.run.envs import resolve_env  # gymnasium: only once the input is known good

    config, env = resolve_env(config)
    check_device(config.device)
    tensorboard_dir = recorded_tensorboard_dir
    if not tensorboard_dir.is_dir():
        tensorboard_dir = log_dir / run_dir.name
    return config, env, RunPaths(run_dir.name, run_dir, tensorboard_dir)


def resume_checkpointed(
    run_dir: Path, log_dir: Path, progress_bar: bool, verbose: int, announce: Callable[[str], None] = print
) -> RunResult:
    """A killed run from its latest checkpoint, with its saved config, to the end of its budget."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise UsageError(f"no checkpoint in {run_dir} to resume from", about="run_dir")
    config = load_config(run_dir / CONFIG)

    from cartpole_dqn.run.checkpoints import read_state

    state = read_state(checkpoint)
    config, env, paths = _prepare(config, run_dir, state.tensorboard_dir, log_dir)
    announce(f"resuming {run_dir} at step {state.num_timesteps:,} of {config.total_timesteps:,}")

    from cartpole_dqn.run.runner import resume_run

    with checkpoint_on_sigint():
        return resume_run(config, env, paths, checkpoint, progress_bar=progress_bar, verbose=verbose)


def continue_finished(
    run_dir: Path,
    overrides: Mapping[str, Any],
    log_dir: Path,
    progress_bar: bool,
    verbose: int,
    announce: Callable[[str], None] = print,
) -> RunResult:
    """Train a finished run further: its final weights, a new replay buffer (as rl-baselines3-zoo's
    ``-i``), its evaluation history and wall clock carried on. The previous results and final model
    are kept as ``results-<steps>.json`` and ``final_model-<steps>.zip``."""
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
    config, env, paths = _prepare(config, run_dir, Path(previous.tensorboard_dir), log_dir)
    announce(f"continuing {run_dir} from step {previous.total_steps:,} to {config.total_timesteps:,}")

    from cartpole_dqn.run.runner import continue_run

    with checkpoint_on_sigint():
        return continue_run(config, env, paths, previous, progress_bar=progress_bar, verbose=verbose)
