"""The tuner's within-run pruner: Optuna's median rule, held off for the first half of every seed's run."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from cartpole_dqn.config import RunConfig
from cartpole_dqn.tuning.studies import StoreSettings
from cartpole_dqn.tuning.sweep import SweepSettings, make_pruner

BUDGET = 100_000
EVAL_FREQ = 5_000


def settings(tmp_path: Path, pruner: str = "median") -> SweepSettings:
    base = RunConfig(total_timesteps=BUDGET, eval_freq=EVAL_FREQ)
    store = StoreSettings(None, tmp_path / "journal.log")
    return SweepSettings(base, "s", 10, "core", "random", pruner, 0, store, tmp_path, tmp_path / "tb", 2)


def study_with_leaders(pruner: optuna.pruners.BasePruner, leaders: int) -> optuna.Study:
    """A study whose ``leaders`` complete trials reported 0.5 at every evaluation of two seeds' runs."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    steps = range(EVAL_FREQ, 2 * BUDGET + 1, EVAL_FREQ)
    for _ in range(leaders):
        study.add_trial(
            optuna.trial.create_trial(
                value=0.5, params={}, distributions={}, intermediate_values=dict.fromkeys(steps, 0.5)
            )
        )
    return study


def first_pruned_step(study: optuna.Study, offset: int) -> int | None:
    """Report a trailing 0.01 at every evaluation of one seed's run; the first step it is pruned at."""
    trial = study.ask()
    for step in range(offset + EVAL_FREQ, offset + BUDGET + 1, EVAL_FREQ):
        trial.report(0.01, step)
        if trial.should_prune():
            return step - offset
    return None


@pytest.mark.parametrize("seed_index", [0, 1])
def test_a_trailing_run_is_not_pruned_before_half_its_budget(tmp_path: Path, seed_index: int) -> None:
    """Early evaluations do not rank configs on slow tasks (LunarLander's solvers trail the median at
    a third of the budget), so every seed's run, not only the first, gets half its budget first."""
    study = study_with_leaders(make_pruner(settings(tmp_path)), leaders=5)
    assert first_pruned_step(study, seed_index * BUDGET) == BUDGET // 2


def test_the_median_rule_waits_for_five_finished_trials(tmp_path: Path) -> None:
    study = study_with_leaders(make_pruner(settings(tmp_path)), leaders=4)
    assert first_pruned_step(study, 0) is None


def test_pruner_none_never_prunes_within_a_run(tmp_path: Path) -> None:
    study = study_with_leaders(make_pruner(settings(tmp_path, "none")), leaders=5)
    assert first_pruned_step(study, 0) is None
