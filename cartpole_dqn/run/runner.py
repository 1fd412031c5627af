"""One training run end to end: config -> agent -> ``learn()`` with the solve protocol -> results.

``train``, ``tune`` and ``benchmark`` all run through :func:`train_new_run` (and ``train --resume``
through :func:`resume_run`); there is no other training loop.
"""

from __future__ import annotations

import shutil
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

from cartpole_dqn.config import RunConfig
from cartpole_dqn.errors import DivergenceError
from cartpole_dqn.run.artifacts import (
    CHECKPOINT_BUFFER,
    CHECKPOINT_MODEL,
    FINAL_MODEL,
    RunPaths,
    release_run,
    write_atomic,
)
from cartpole_dqn.run.checkpoints import (
    CheckpointState,
    RunCheckpointCallback,
    checkpoint_dir,
    end_episodes_at_the_seam,
    read_state,
    restore_best_model,
    restore_rng_state,
)
from cartpole_dqn.run.envs import EVAL_SEED_OFFSET, FINAL_EVAL_SEED_OFFSET, EnvInfo, make_train_env
from cartpole_dqn.run.evaluation import EvalResult, evaluate_greedy, is_solved
from cartpole_dqn.run.factory import agent_class, build_agent
from cartpole_dqn.run.interrupt import RunInterrupted
from cartpole_dqn.run.models import readable
from cartpole_dqn.run.results import RunResult
from cartpole_dqn.run.solve import SolveCallback, SolveState, save_model_atomic

VERSIONED = ("stable-baselines3", "torch", "gymnasium", "numpy")


def train_new_run(
    config: RunConfig,
    env: EnvInfo,
    paths: RunPaths,
    *,
    progress_bar: bool = False,
    verbose: int = 0,
    callback: BaseCallback | None = None,
    callback_after_eval: BaseCallback | None = None,
    record_divergence: bool = False,
    tensorboard: bool = True,
) -> RunResult:
    """Train a new run, save its best checkpoint and config, re-evaluate the checkpoint, write results.

    :param callback: any SB3 callback, run beside the protocol (as ``learn(callback=...)``)
    :param callback_after_eval: run after every evaluation; returning False stops training
    :param record_divergence: a run that diverges (:class:`DivergenceError`) ends with an unsolved
        result naming the divergence instead of raising (many-seed experiments count it and go on)
    :param tensorboard: False: no TensorBoard curves (e.g. a tuner's selection re-trainings, which
        would bury the user's own runs in TensorBoard's run selector)
    """
    th.set_num_threads(config.torch_threads)
    start = time.perf_counter()
    write_atomic(paths.config, config.to_yaml())
    agent = build_agent(config, make_train_env(config))
    agent.set_logger(tensorboard_logger(paths.tensorboard_dir if tensorboard else None, config=config))
    solve = solve_callback(config, env, paths, verbose, callback_after_eval)
    diverged = None
    try:
        learn(agent, solve, config.total_timesteps, True, progress_bar, callback)
    except DivergenceError as exc:
        if not record_divergence:
            raise
        diverged = str(exc)
    assert solve.start_time is not None
    setup_s = solve.start_time - start
    return finish(config, env, paths, agent, solve, setup_s=setup_s, resumed=False, diverged=diverged)


def resume_run(
    config: RunConfig,
    env: EnvInfo,
    paths: RunPaths,
    checkpoint: Path,
    *,
    progress_bar: bool = False,
    verbose: int = 0,
    callback: BaseCallback | None = None,
    callback_after_eval: BaseCallback | None = None,
) -> RunResult:
    """Continue a run from its checkpoint, to the end of its budget, as :func:`train_new_run` would."""
    th.set_num_threads(config.torch_threads)
    saved = read_state(checkpoint)
    restore_best_model(checkpoint, paths.model)
    agent = load_checkpointed_agent(config, checkpoint, saved)
    agent.set_logger(tensorboard_logger(paths.tensorboard_dir, purge_step=saved.num_timesteps))
    solve = solve_callback(config, env, paths, verbose, callback_after_eval)
    solve.restore(saved.solve, saved.next_eval, saved.elapsed_s)
    return carry_on(config, env, paths, agent, solve, saved.num_timesteps, progress_bar, callback)


def continue_run(
    config: RunConfig,
    env: EnvInfo,
    paths: RunPaths,
    previous: RunResult,
    *,
    progress_bar: bool = False,
    verbose: int = 0,
) -> RunResult:
    """Train a finished run further, to ``config.total_timesteps``: its final weights with a new
    replay buffer (as rl-baselines3-zoo's ``-i``), its evaluation history, solve and wall clock
    carried on. The previous results and final model are kept beside the new ones."""
    th.set_num_threads(config.torch_threads)
    steps = previous.total_steps
    final = paths.run_dir / FINAL_MODEL
    with readable("the final model", final):  # before anything is written
        agent = agent_class(config).load(final, env=make_train_env(config), device=config.device)
    shutil.copyfile(final, paths.run_dir / f"final_model-{steps}.zip")
    shutil.copyfile(paths.results, paths.run_dir / f"results-{steps}.json")
    write_atomic(paths.config, config.to_yaml())
    agent.set_logger(tensorboard_logger(paths.tensorboard_dir, purge_step=steps + 1))
    solve = solve_callback(config, env, paths, verbose, None)
    state = SolveState(
        solved=previous.solved,
        steps_to_solve=previous.steps_to_solve,
        wall_to_solve_s=previous.wall_to_solve_s,
        eval_time_s=previous.eval_time_s,
        history=list(previous.evaluations),
    )
    every = config.effective_eval_freq
    solve.restore(state, (steps // every + 1) * every, previous.train_wall_s)
    return carry_on(config, env, paths, agent, solve, steps, progress_bar, None)


def carry_on(
    config: RunConfig,
    env: EnvInfo,
    paths: RunPaths,
    agent: BaseAlgorithm,
    solve: SolveCallback,
    done_steps: int,
    progress_bar: bool,
    callback: BaseCallback | None,
) -> RunResult:
    """The common end of :func:`resume_run` and :func:`continue_run`: train a loaded agent with its
    restored protocol from ``done_steps`` to the budget, then finish the run as resumed."""
    learn(agent, solve, max(config.total_timesteps - done_steps, 0), False, progress_bar, callback)
    return finish(config, env, paths, agent, solve, setup_s=0.0, resumed=True)


def load_checkpointed_agent(config: RunConfig, checkpoint: Path, saved: CheckpointState) -> BaseAlgorithm:
    """The checkpointed agent with its replay buffer and random streams, ready to continue."""
    train_env = make_train_env(config)
    with readable("the checkpoint's model", checkpoint / CHECKPOINT_MODEL):
        agent = agent_class(config).load(checkpoint / CHECKPOINT_MODEL, env=train_env, device=config.device)
    with readable("the checkpoint's replay buffer", checkpoint / CHECKPOINT_BUFFER):
        agent.load_replay_buffer(checkpoint / CHECKPOINT_BUFFER)
    assert agent.replay_buffer is not None
    end_episodes_at_the_seam(agent.replay_buffer)  # the envs start new episodes here
    restore_rng_state(agent, saved.rng)  # load() reseeded everything from the seed
    train_env.seed(None)  # new start states, drawn from the restored stream (not the run's first ones)
    return agent


def solve_callback(
    config: RunConfig, env: EnvInfo, paths: RunPaths, verbose: int, callback_after_eval: BaseCallback | None
) -> SolveCallback:
    """The run's protocol, with checkpointing as its child when the config asks for it."""
    # Always there: with checkpoint_every 0 it writes no periodic checkpoint, only one on Ctrl-C.
    checkpoint = RunCheckpointCallback(paths.run_dir, config.checkpoint_every, paths.tensorboard_dir)
    return SolveCallback(
        env,
        eval_freq=config.effective_eval_freq,
        eval_episodes=config.eval_episodes,
        curve_episodes=config.curve_episodes,
        eval_seed=config.seed + EVAL_SEED_OFFSET,
        budget=config.total_timesteps,
        best_model_path=paths.model,
        early_stop=config.early_stop,
        callback_after_eval=callback_after_eval,
        checkpoint=checkpoint,
        verbose=verbose,
    )


def learn(
    agent: BaseAlgorithm,
    solve: SolveCallback,
    steps: int,
    fresh: bool,
    progress_bar: bool,
    callback: BaseCallback | None,
) -> None:
    from cartpole_dqn.run.progress_bar import TrainingProgressBar

    extra = [] if callback is None else [callback]
    if progress_bar:
        extra.append(TrainingProgressBar(solve))
    callbacks: BaseCallback = CallbackList([solve, *extra]) if extra else solve
    try:
        agent.learn(steps, callback=callbacks, reset_num_timesteps=fresh)
    finally:
        agent.logger.close()
        assert agent.env is not None
        agent.env.close()
        solve.close()
    if solve.interrupted_at is not None:
        checkpoint = solve.checkpoint
        run_dir = checkpoint.run_dir if isinstance(checkpoint, RunCheckpointCallback) else None
        if run_dir is None:
            raise RunInterrupted(Path("."), solve.interrupted_at, None)
        raise RunInterrupted(run_dir, solve.interrupted_at, checkpoint_dir(run_dir))


def finish(
    config: RunConfig,
    env: EnvInfo,
    paths: RunPaths,
    agent: BaseAlgorithm,
    solve: SolveCallback,
    setup_s: float,
    resumed: bool,
    diverged: str | None = None,
) -> RunResult:
    """Re-evaluate the saved model on fresh seeds, write results.json, drop the checkpoint.

    A diverged run (``diverged``: what happened) is unsolved; its non-finite final weights are not
    saved, and the best model saved before the divergence, if any, is the one re-evaluated."""
    from cartpole_dqn.run.models import load_model

    train_wall = solve.elapsed()
    if diverged is None:  # the last weights, beside the best (as zoo users expect)
        kept = "the best model and checkpoint are intact"
        save_model_atomic(agent, paths.run_dir / FINAL_MODEL, kept)
    final_seed = config.seed + FINAL_EVAL_SEED_OFFSET
    final = EvalResult(returns=np.zeros(1), seed=final_seed)  # stands in where no model was saved
    if paths.model.is_file():
        best = load_model(paths.model)
        final = evaluate_greedy(
            best.policy, config.env_id, config.eval_episodes, final_seed, env.max_episode_steps
        )
    episodes = final.episodes if paths.model.is_file() else 0
    state = solve.state
    solved = state.solved and diverged is None
    result = RunResult(
        env_id=config.env_id,
        seed=config.seed,
        threshold=env.threshold,
        max_return=env.max_return,
        budget=config.total_timesteps,
        solved=solved,
        steps_to_solve=state.steps_to_solve if solved else None,
        wall_to_solve_s=state.wall_to_solve_s if solved else None,
        total_steps=int(agent.num_timesteps),
        setup_s=setup_s,
        train_wall_s=train_wall,
        resumed=resumed,
        eval_time_s=state.eval_time_s,
        steps_per_s=agent.num_timesteps / max(train_wall - state.eval_time_s, 1e-9),
        best_step=state.best_step,
        eval_mean=final.mean,
        eval_std=final.std,
        eval_min=final.min,
        eval_max=final.max,
        eval_episodes=episodes,
        final_eval_seed=final_seed,
        stays_solved=solved and is_solved(final.mean, env.threshold),
        run_name=paths.name,
        run_dir=str(paths.run_dir.resolve()),
        model_path=str(paths.model.resolve()),
        config_path=str(paths.config.resolve()),
        tensorboard_dir=str(paths.tensorboard_dir.resolve()),
        evaluations=list(state.history),
        versions={pkg: version(pkg) for pkg in VERSIONED},
        diverged=diverged,
    )
    write_atomic(paths.results, result.to_json())
    shutil.rmtree(checkpoint_dir(paths.run_dir), ignore_errors=True)  # finished: results.json replaces it
    release_run(paths.run_dir)
    return result


def tensorboard_logger(
    folder: Path | None, purge_step: int | None = None, config: RunConfig | None = None
) -> Logger:
    """SB3's TensorBoard logger; with ``purge_step``, events at or after that step from an interrupted
    earlier session are hidden, so a resumed run's curves have no duplicated steps. With ``config``,
    the run's config is written as text (TensorBoard's Text tab, tag ``config``), so a curve can be
    traced to the exact settings that drew it. Without a folder: a logger that writes nothing."""
    if folder is None:
        return Logger(folder=None, output_formats=[])
    output = TensorBoardOutputFormat(str(folder))
    if purge_step is not None:
        from torch.utils.tensorboard import SummaryWriter

        output.writer.close()
        output.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)
    if config is not None:
        output.writer.add_text("config", "```yaml\n" + config.to_yaml().rstrip() + "\n```", 0)
    return Logger(folder=str(folder), output_formats=[output])
