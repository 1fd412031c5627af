"""Optuna pruning as a child of the solve protocol (rl-baselines3-zoo's ``TrialEvalCallback`` pattern)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stable_baselines3.common.callbacks import BaseCallback

from cartpole_dqn.run.solve import SolveCallback
from cartpole_dqn.tuning.objective import CurveScore

if TYPE_CHECKING:
    import optuna


class TrialPruningCallback(BaseCallback):
    """After every evaluation: report the objective so far to Optuna, and stop a pruned trial.

    The solve callback's ``callback_after_eval``; it reads the evaluations from ``self.parent``.
    A solved run reports its final value for the remaining evaluation steps too, so the pruner
    compares like with like, and is never pruned.

    A multi-seed trial runs its seeds one after another; run ``i`` reports at ``offset = i *
    stride`` plus its own step, so the pruner compares a trial's run on seed ``i`` with the other
    trials' runs on that same seed at the same step (the tuner's seeds are common to all trials).
    """

    def __init__(self, trial: optuna.Trial, score: CurveScore, offset: int = 0) -> None:
        super().__init__()
        self.trial = trial
        self.score = score
        self.offset = offset
        self.pruned = False

    def _on_step(self) -> bool:
        assert isinstance(self.parent, SolveCallback)
        state = self.parent.state
        value = self.score.value(state)
        step = state.history[-1].step
        self.trial.report(value, self.offset + step)
        if state.solved:
            for later in self.score.remaining_steps(step):
                self.trial.report(value, self.offset + later)
            return True
        if self.trial.should_prune():
            self.pruned = True
            return False
        return True
