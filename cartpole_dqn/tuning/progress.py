"""One line on stderr per finished trial, so a sweep is never silent for minutes.

``trial 12/50 pruned  value 0.4123  seeds solved 0/1  best 1.9200 (#7)  elapsed 1m03s  ETA 3m10s``:
the study's finished count (all workers), this trial's state and value, its seeds, the study's
best so far, time since the command started, and the remaining time at this command's pace.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from optuna.trial import FrozenTrial, TrialState

from cartpole_dqn.run.clock import clock, eta

if TYPE_CHECKING:
    import optuna

    from cartpole_dqn.tuning.sweep import SweepSettings


def trial_line(study: optuna.Study, trial: FrozenTrial, settings: SweepSettings) -> str:
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED)
    finished = len(study.get_trials(deepcopy=False, states=finished_states))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value or 0.0, default=None)
    seeds = trial.user_attrs.get("seed_results", [])
    solved = sum(bool(r.get("solved")) for r in seeds)
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    best_text = "-" if best is None or best.value is None else f"{best.value:.4f} (#{best.number})"
    elapsed = time.time() - settings.started_at
    done_here = finished - settings.finished_at_start
    return (
        f"trial {min(finished, settings.trials)}/{settings.trials} {trial.state.name.lower():8s} "
        f"#{trial.number:<4d} value {value}  seeds solved {solved}/{len(seeds)} of "
        f"{settings.max_seeds}  best {best_text}  elapsed {clock(elapsed)}  "
        f"ETA {eta(elapsed, done_here, settings.trials - finished)}"
    )
