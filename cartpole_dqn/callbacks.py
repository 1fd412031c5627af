"""The solve protocol as an SB3 callback (GUIDE section 3).

Every ``eval_freq`` training env steps the greedy policy is evaluated on a separate, vectorized
eval env: a cheap screen first, and when the screen reaches the threshold, the deciding
``eval_episodes``-episode evaluation. The first deciding evaluation at or above the threshold
marks the run solved (steps and wall-clock seconds are recorded) and, with early stop, ends
training. The best checkpoint is saved whenever an evaluation beats the previous best.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback

from cartpole_dqn.evaluation import EvalResult, Evaluator, is_solved


@dataclass
class EvalRecord:
    """One periodic evaluation: which episodes decided it, and what it scored."""

    step: int
    wall_s: float
    mean: float
    std: float
    episodes: int
    deciding: bool  # True: the full evaluation ran; False: only the screen did


@dataclass
class SolveState:
    """What the solve callback learned so far; read by the caller after ``learn()``."""

    solved: bool = False
    steps_to_solve: int | None = None
    wall_to_solve_s: float | None = None
    best_score: float = float("-inf")
    best_step: int | None = None
    eval_time_s: float = 0.0
    history: list[EvalRecord] = field(default_factory=list)


class SolveCallback(BaseCallback):
    """Periodic greedy evaluation, best checkpoint, solve detection and early stop.

    :param env_id: env to evaluate on (a separate vector env, seeded with ``eval_seed``)
    :param threshold: solve threshold on the deciding evaluation's mean return
    :param eval_freq: training env steps between evaluations
    :param eval_episodes: episodes of the deciding evaluation
    :param screen_episodes: episodes of the screen that gates the deciding evaluation (0 = no screen)
    :param eval_seed: reset seed of the eval envs (the same for every evaluation, so checkpoints
        are compared on the same starting states)
    :param best_model_path: where the best checkpoint is saved (``model.save``); None = don't save
    :param early_stop: stop training at the first solved evaluation
    :param start_time: ``time.perf_counter()`` value that wall-to-solve counts from
        (default: the start of ``learn()``, so one-off process setup such as imports is not counted)
    :param max_episode_steps: the env's step limit (bounds an evaluation)
    :param on_evaluation: called after every evaluation with the solve state; returning False stops
        training (the tuner reports to Optuna and prunes through this)
    """

    def __init__(
        self,
        env_id: str,
        threshold: float,
        eval_freq: int,
        eval_episodes: int,
        screen_episodes: int,
        eval_seed: int,
        best_model_path: Path | None,
        early_stop: bool = True,
        start_time: float | None = None,
        max_episode_steps: int | None = None,
        on_evaluation: Callable[[SolveState], bool] | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.on_evaluation = on_evaluation
        self.threshold = threshold
        self.eval_freq = eval_freq
        self.eval_seed = eval_seed
        self.best_model_path = best_model_path
        self.early_stop = early_stop
        self.start_time = start_time
        self.state = SolveState()
        self._full = Evaluator(env_id, eval_episodes, max_episode_steps)
        self._screen = (
            Evaluator(env_id, screen_episodes, max_episode_steps)
            if 0 < screen_episodes < eval_episodes
            else None
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

    def _on_training_start(self) -> None:
        if self._restored:
            return
        if self.start_time is None:
            self.start_time = time.perf_counter()
        self._next_eval = self.num_timesteps + self.eval_freq

    def _on_step(self) -> bool:
        if self.num_timesteps < self._next_eval:
            return True
        self._next_eval += self.eval_freq * ((self.num_timesteps - self._next_eval) // self.eval_freq + 1)
        return self.evaluate_now()

    def evaluate_now(self) -> bool:
        """Run one evaluation at the current step; return False when training should stop."""
        began = time.perf_counter()
        result, deciding = self._evaluate()
        self.state.eval_time_s += time.perf_counter() - began
        assert self.start_time is not None
        wall = time.perf_counter() - self.start_time
        step = self.num_timesteps
        record = EvalRecord(step, wall, result.mean, result.std, result.episodes, deciding)
        self.state.history.append(record)
        solved_now = deciding and is_solved(result.mean, self.threshold)

        # A deciding evaluation outranks any screen-only one; within a kind, the higher mean wins.
        score = result.mean + (1e9 if deciding else 0.0)
        if score > self.state.best_score:
            self.state.best_score = score
            self.state.best_step = step
            if self.best_model_path is not None:
                self.model.save(self.best_model_path)

        if solved_now and not self.state.solved:
            self.state.solved = True
            self.state.steps_to_solve = step
            self.state.wall_to_solve_s = wall

        self.logger.record("eval/mean_reward", result.mean)
        self.logger.record("eval/std_reward", result.std)
        self.logger.record("eval/episodes", result.episodes)
        self.logger.record("eval/solved", int(self.state.solved))
        self.logger.record("time/wall_s", wall)
        self.logger.dump(step)
        if self.verbose:
            kind = "deciding" if deciding else "screen"
            print(
                f"step {step}: eval mean {result.mean:.1f} ± {result.std:.1f} ({result.episodes} ep, {kind})"
            )
        keep_going = self.on_evaluation(self.state) if self.on_evaluation is not None else True
        return keep_going and not (self.state.solved and self.early_stop)

    def _evaluate(self) -> tuple[EvalResult, bool]:
        policy = self.model.policy
        if self._screen is not None:
            screen = self._screen(policy, self.eval_seed + 7919)
            if not is_solved(screen.mean, self.threshold):
                return screen, False
        return self._full(policy, self.eval_seed), True

    def _on_training_end(self) -> None:
        self._full.close()
        if self._screen is not None:
            self._screen.close()
