"""One training run end to end: config -> agent -> ``learn()`` with the solve callback -> results.

``train``, ``tune`` and ``benchmark`` all call :func:`run_training`; there is no other training loop.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

from cartpole_dqn.agent import DQNAgent
from cartpole_dqn.artifacts import RunPaths, write_atomic, write_json
from cartpole_dqn.callbacks import SolveCallback, SolveState
from cartpole_dqn.checkpoints import (
    CheckpointCallback,
    checkpoint_dir,
    end_episodes_at_the_seam,
    read_state,
    restore_best_model,
    restore_rng_state,
)
from cartpole_dqn.config import RunConfig
from cartpole_dqn.envs import EVAL_SEED_OFFSET, FINAL_EVAL_SEED_OFFSET, EnvInfo, make_train_env
from cartpole_dqn.evaluation import evaluate_policy, is_solved
from cartpole_dqn.factory import agent_class, build_agent


def run_training(
    config: RunConfig,
    env_info: EnvInfo,
    paths: RunPaths,
    progress_bar: bool = False,
    verbose: int = 0,
    extra_callbacks: list[BaseCallback] | None = None,
    on_evaluation: Callable[[SolveState], bool] | None = None,
    resume_from: Path | None = None,
) -> dict[str, Any]:
    """Train one run, save its best checkpoint and config, re-evaluate the checkpoint, write results.json.

    With ``resume_from`` (a checkpoint folder), continue that run where the checkpoint left it.
    """
    th.set_num_threads(config.torch_threads)
    start = time.perf_counter()
    env = make_train_env(config)
    if resume_from is None:
        write_atomic(paths.config, config.to_yaml())
        agent = build_agent(config, env)
        agent.set_logger(tensorboard_logger(paths.tensorboard_dir))
    else:
        saved = read_state(resume_from)
        restore_best_model(resume_from, paths.model)
        agent = agent_class(config).load(resume_from / "model.zip", env=env, device=config.device)
        agent.load_replay_buffer(resume_from / "replay_buffer.pkl")
        assert agent.replay_buffer is not None
        end_episodes_at_the_seam(agent.replay_buffer)
        restore_rng_state(agent, saved["rng"])  # load() reseeded everything from the seed
        env.seed(None)  # new start states, drawn from the restored stream (not the run's first ones)
        agent.set_logger(tensorboard_logger(paths.tensorboard_dir, purge_step=saved["num_timesteps"]))
    solve = SolveCallback(
        env_info,
        eval_freq=config.eval_freq,
        eval_episodes=config.eval_episodes,
        curve_episodes=config.curve_episodes,
        eval_seed=config.seed + EVAL_SEED_OFFSET,
        budget=config.total_timesteps,
        best_model_path=paths.model,
        early_stop=config.early_stop,
        on_evaluation=on_evaluation,
        verbose=verbose,
    )
    callbacks: list[BaseCallback] = [solve, *(extra_callbacks or [])]
    if config.checkpoint_every > 0:
        callbacks.append(
            CheckpointCallback(paths.run_dir, config.checkpoint_every, solve, paths.tensorboard_dir)
        )
    remaining = config.total_timesteps
    if resume_from is not None:
        solve.restore(saved["solve"], saved["next_eval"], saved["elapsed_s"])
        remaining = max(config.total_timesteps - saved["num_timesteps"], 0)
    try:
        agent.learn(
            remaining,
            callback=CallbackList(callbacks),
            progress_bar=progress_bar,
            reset_num_timesteps=resume_from is None,
        )
    finally:
        agent.logger.close()
        env.close()
    train_wall = solve.elapsed()
    setup_s = 0.0 if resume_from is not None else solve.start_time - start  # type: ignore[operator]

    best = DQNAgent.load(paths.model, device="cpu")
    final_seed = config.seed + FINAL_EVAL_SEED_OFFSET
    final = evaluate_policy(
        best.policy, config.env_id, config.eval_episodes, final_seed, env_info.max_episode_steps
    )
    state = solve.state
    training_only = max(train_wall - state.eval_time_s, 1e-9)
    results: dict[str, Any] = {
        "env_id": config.env_id,
        "seed": config.seed,
        "threshold": env_info.threshold,
        "max_return": env_info.max_return,
        "budget": config.total_timesteps,
        "solved": state.solved,
        "steps_to_solve": state.steps_to_solve,
        "wall_to_solve_s": state.wall_to_solve_s,
        "total_steps": int(agent.num_timesteps),
        "setup_s": setup_s,
        "train_wall_s": train_wall,
        "resumed": resume_from is not None,
        "eval_time_s": state.eval_time_s,
        "steps_per_s": agent.num_timesteps / training_only,
        "best_step": state.best_step,
        "eval_mean": final.mean,
        "eval_std": final.std,
        "eval_min": final.min,
        "eval_max": final.max,
        "eval_episodes": final.episodes,
        "final_eval_seed": final_seed,
        # Stays solved: solved within the budget, and the saved model still passes on fresh seeds.
        "stays_solved": state.solved and is_solved(final.mean, env_info.threshold),
        "run_name": paths.name,
        "run_dir": str(paths.run_dir.resolve()),
        "model_path": str(paths.model.resolve()),
        "config_path": str(paths.config.resolve()),
        "tensorboard_dir": str(paths.tensorboard_dir.resolve()),
        "evaluations": [asdict(record) for record in state.history],
        "versions": {pkg: version(pkg) for pkg in ("stable-baselines3", "torch", "gymnasium", "numpy")},
    }
    write_json(paths.results, results)
    shutil.rmtree(checkpoint_dir(paths.run_dir), ignore_errors=True)  # finished: results.json replaces it
    return results


def tensorboard_logger(folder: Path, purge_step: int | None = None) -> Logger:
    """SB3's TensorBoard logger; with ``purge_step``, events at or after that step from an interrupted
    earlier session are hidden, so a resumed run's curves have no duplicated steps."""
    output = TensorBoardOutputFormat(str(folder))
    if purge_step is not None:
        from torch.utils.tensorboard import SummaryWriter

        output.writer.close()
        output.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)
    return Logger(folder=str(folder), output_formats=[output])
