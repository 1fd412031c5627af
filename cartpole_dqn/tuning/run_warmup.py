"""Optuna's median pruner with its warmup counted inside every seed's run, not once per trial.

A multi-seed trial reports seed ``i``'s evaluations at ``i * span + step`` (see
:class:`cartpole_dqn.tuning.pruning.TrialPruningCallback`), so Optuna's own ``n_warmup_steps``
only spares the first seed's run. Here the median rule applies to a report only once the run it
belongs to is ``warmup`` steps in.
"""

from __future__ import annotations

import optuna


class MedianAfterWarmupPruner(optuna.pruners.BasePruner):
    """The median rule (prune a trial below the median of finished trials at the same step),
    skipped during the first ``warmup`` steps of each seed's run."""

    def __init__(self, span: int, warmup: int, n_startup_trials: int) -> None:
        self.span = span
        self.warmup = warmup
        self._median = optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=0)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step % self.span < self.warmup:
            return False
        return self._median.prune(study, trial)
