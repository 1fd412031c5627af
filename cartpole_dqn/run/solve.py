"""The solve protocol as an SB3 callback.

Every ``eval_freq`` training env steps, and once more at the budget, the greedy policy is
evaluated on a separate, vectorized eval env over ``eval_episodes`` episodes. The run is solved at
the first evaluation, at a step within the budget, whose mean reaches the threshold; with early
stop, training ends there. An evaluation may stop as soon as a pass has become impossible (a sound
shortcut: it never changes a verdict); its first ``curve_episodes`` episodes still run to the end
and give the curve its value. The best checkpoint is saved whenever an evaluation ranks above all
earlier ones. Training never runs past the budget (SB3 would finish its ``train_freq`` chunk).

Composition follows SB3's ``EvalCallback``: a ``callback_after_eval`` child runs after every
evaluation and can stop training (the tuner's pruning); the run's checkpointing is a child too,
called at rollout starts. Children read the protocol's state from ``self.parent``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EventCallback

from cartpole_dqn.errors import write_error
from cartpole_dqn.run.artifacts import discard
from cartpole_dqn.run.envs import EnvInfo
from cartpole_dqn.run.evaluation import EvalResult, Evaluator, PassBound, is_solved
from cartpole_dqn.run.interrupt import interrupt_requested
from cartpole_dqn.run.return_bounds import remaining_return_bound


@dataclass
class EvalRecord:
    """One periodic evaluation: what it scored, and whether all its episodes decided it."""

    step: int
    wall_s: float
    mean: float
    std: float
    episodes: int
    deciding: bool  # True: all eval_episodes ran (the verdict reads it); False: stopped early


def rank(record: EvalRecord) -> tuple[bool, float]:
    """A complete (deciding) evaluation outranks any stopped one; within a kind, the higher mean."""
    return (record.deciding, record.mean)


def best_record(history: Sequence[EvalRecord]) -> EvalRecord | None:
    """The earliest of the best-ranked evaluations: the one whose model is the saved checkpoint."""
    return max(history, key=rank) if history else None


@dataclass
class SolveState:
    """What the solve callback learned so far; read by the caller after ``learn()``."""

    solved: bool = False
    steps_to_solve: int | None = None
    wall_to_solve_s: float | None = None
    eval_time_s: float = 0.0
    history: list[EvalRecord] = field(default_factory=list)

    @property
    def best_step(self) -> int | None:
        best = best_record(self.history)
        return None if best is None else best.step


class SolveCallback(EventCallback):
    """Periodic greedy evaluation, best checkpoint, solve detection, early stop and the budget.

    :param env: the env (id, threshold, step limit) to evaluate on, in a
        separate vector env seeded with ``eval_seed``
    :param eval_freq: training env steps between evaluations
    :param eval_episodes: episodes of every evaluation; the verdict reads their mean
    :param curve_episodes: episodes that still run to the end when an evaluation stops early because
        a pass is impossible (0: never stop early)
    :param eval_seed: reset seed of the eval envs (the same for every evaluation, so checkpoints
        are compared on the same starting states)
    :param budget: training env steps; a solve counts only at a step within it, and training stops
        at the first step that reaches it (after evaluating there)
    :param best_model_path: where the best checkpoint is saved (``model.save``); None = don't save
    :param early_stop: stop training at the first solved evaluation
    :param start_time: ``time.perf_counter()`` value that wall-to-solve counts from
        (default: the start of ``learn()``, so one-off process setup such as imports is not counted)
    :param callback_after_eval: called after every evaluation (``on_step``); returning False stops
        training. It reads the evaluations from ``self.parent.state``.
    :param checkpoint: called at every rollout start, to checkpoint the run with this protocol's state
    """

    def __init__(
        self,
        env: EnvInfo,
        *,
        eval_freq: int,
        eval_episodes: int,
        curve_episodes: int,
        eval_seed: int,
        budget: int,
        best_model_path: Path | None,
        early_stop: bool = True,
        start_time: float | None = None,
        callback_after_eval: BaseCallback | None = None,
        checkpoint: BaseCallback | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(callback_after_eval, verbose)
        self.checkpoint = checkpoint
        self.interrupted_at: int | None = None  # the step a Ctrl-C stopped training at
        if checkpoint is not None:
            checkpoint.parent = self
        self.threshold = env.threshold
        self.eval_freq = eval_freq
        self.eval_seed = eval_seed
        self.budget = budget
        self.best_model_path = best_model_path
        self.early_stop = early_stop
        self.start_time = start_time
        self.state = SolveState()
        bound = None
        remaining = remaining_return_bound(env.env_id, env.max_episode_steps)
        if curve_episodes > 0 and remaining is not None:
            bound = PassBound(env.threshold, remaining)
        self._evaluator = Evaluator(
            env.env_id, eval_episodes, env.max_episode_steps, bound, min(curve_episodes, eval_episodes)
        )
        self._next_eval = eval_freq
        self._restored = False  # set by restore(): a resumed run keeps its schedule and clock

    @property
    def next_eval(self) -> int:
        return self._next_eval

    def elapsed(self) -> float:
        """Seconds of training so far (the wall-to-solve clock)."""
        return 0.0 if self.start_time is None else time.perf_counter() - self.start_time

    def restore(self, state: SolveState, next_eval: int, elapsed_s: float) -> None:
        """Continue a checkpointed run: its evaluations, its schedule and its wall clock."""
        self.state = state
        self._next_eval = next_eval
        self.start_time = time.perf_counter() - elapsed_s
        self._restored = True

    def init_callback(self, model: Any) -> None:
        super().init_callback(model)
        if self.checkpoint is not None:
            self.checkpoint.init_callback(self.model)

    def _on_training_start(self) -> None:
        if not self._restored:
            if self.start_time is None:
                self.start_time = time.perf_counter()
            self._next_eval = self.num_timesteps + self.eval_freq
        super()._on_training_start()
        if self.checkpoint is not None:
            self.checkpoint.on_training_start(self.locals, self.globals)

    def _on_rollout_start(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.on_rollout_start()

    def _on_step(self) -> bool:
        if interrupt_requested():
            # Ctrl-C: SB3 calls this after the env step and before storing its transition, so the
            # checkpoint is taken as of the previous step (what the buffer holds), then training stops.
            self.interrupted_at = self.num_timesteps - self.model.n_envs
            if self.checkpoint is not None and hasattr(self.checkpoint, "save_at"):
                self.checkpoint.save_at(self.interrupted_at)
            return False
        at_budget = self.num_timesteps >= self.budget
        if self.num_timesteps >= self._next_eval:
            behind = (self.num_timesteps - self._next_eval) // self.eval_freq + 1
            self._next_eval += self.eval_freq * behind
        elif not at_budget:
            return True
        keep_going = self.evaluate_now()
        return keep_going and not at_budget

    def evaluate_now(self) -> bool:
        """Run one evaluation at the current step; return False when training should stop."""
        began = time.perf_counter()
        result = self._evaluator(self.model.policy, self.eval_seed)
        self.state.eval_time_s += time.perf_counter() - began
        assert self.start_time is not None
        wall = time.perf_counter() - self.start_time
        step = self.num_timesteps
        record = self._record(result, step, wall)

        earlier = best_record(self.state.history[:-1])
        if (earlier is None or rank(record) > rank(earlier)) and self.best_model_path is not None:
            save_model_atomic(self.model, self.best_model_path, "the previous best model is intact")
        passed = record.deciding and is_solved(record.mean, self.threshold) and step <= self.budget
        if passed and not self.state.solved:
            self.state.solved = True
            self.state.steps_to_solve = step
            self.state.wall_to_solve_s = wall

        # Every evaluation is a point of eval/mean_reward, as in SB3's EvalCallback; eval/episodes
        # says how many episodes it ran (all of them: a deciding one), and the deciding ones, what
        # the verdict reads, are also their own curve.
        self.logger.record("eval/mean_reward", record.mean)
        self.logger.record("eval/std_reward", record.std)
        self.logger.record("eval/episodes", record.episodes)
        if record.deciding:
            self.logger.record("eval/deciding_mean_reward", record.mean)
        self.logger.record("eval/solved", int(self.state.solved))
        self.logger.record("time/wall_s", wall)
        self.logger.dump(step)
        if self.verbose:
            kind = "deciding" if record.deciding else "stopped early: a pass was impossible"
            print(
                f"step {step}: eval mean {record.mean:.1f} ± {record.std:.1f} ({record.episodes} ep, {kind})"
            )
        keep_going = self._on_event()
        return keep_going and not (self.state.solved and self.early_stop)

    def _record(self, result: EvalResult, step: int, wall: float) -> EvalRecord:
        record = EvalRecord(step, wall, result.mean, result.std, result.episodes, not result.stopped_early)
        self.state.history.append(record)
        return record

    def close(self) -> None:
        """Close the evaluation env (also when training stopped on an exception)."""
        self._evaluator.close()

    def _on_training_end(self) -> None:
        self.close()
        if self.callback is not None:
            self.callback.on_training_end()
        if self.checkpoint is not None:
            self.checkpoint.on_training_end()


def save_model_atomic(model: BaseAlgorithm, path: Path, kept: str) -> None:
    """``model.save(path)`` through a temp file and a rename: a full disk or read-only folder is a
    :class:`WriteError` and leaves the file that was there."""
    tmp = path.with_name(f".{path.stem}.tmp.zip")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        discard(tmp)
        raise write_error(str(path), exc, kept) from None
