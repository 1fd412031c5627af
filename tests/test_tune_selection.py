"""The tuner's pick on fresh seeds end to end through ``tune --select``, on crafted studies whose
candidates are known to lose to, or beat, the base config (the unit tests are in test_selection.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.tuning.seeds import confirmation_seeds
from cartpole_dqn.tuning.space import base_params
from cartpole_dqn.tuning.studies import StoreSettings, open_storage
from cartpole_dqn.tuning.sweep import SweepSettings
from tests.conftest import run_module
from tests.test_tune import load

pytestmark = pytest.mark.slow


def crafted_study(
    workdir: Path, name: str, base: RunConfig, trials: list[tuple[float, dict[str, Any]]]
) -> None:
    """A finished study of the full space around ``base``: complete trials with these values and params."""
    from cartpole_dqn.tuning.space import distributions

    storage = open_storage(StoreSettings(None, workdir / "experiments" / "tuning" / "journal.log"))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    store = StoreSettings(None, workdir / "experiments" / "tuning" / "journal.log")
    recorded = SweepSettings(
        base, name, len(trials), "full", "tpe", "median", 0, store, workdir, workdir
    ).recorded()
    for key, value in recorded.items():
        study.set_user_attr(key, value)
    for value, params in trials:
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                params={**base_params("full", base), **params},
                distributions=distributions("full", base),
                user_attrs={"seed_results": []},
            )
        )


QUICK = {"eval_episodes": 20, "curve_episodes": 5}


def test_when_no_candidate_beats_the_base_best_yaml_is_the_base_config(workdir: Path) -> None:
    """Two top-ranked trials that cannot learn in the budget (learning rate 1e-4) lose to the base
    on the fresh seeds: best.yaml is the base config, and says so."""
    base = RunConfig(total_timesteps=3000, **QUICK)  # type: ignore[arg-type]
    crafted_study(
        workdir, "keep", base, [(1.9, {"learning_rate": 1e-4}), (1.8, {"learning_rate": 1.5e-4}), (1.0, {})]
    )
    result = run_module(
        "cartpole_dqn.tune", "--select", "--study-name", "keep", "--validate-seeds", "3", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    folder = workdir / "experiments" / "tuning" / "keep"
    assert load_config(folder / "best.yaml") == base
    header = (folder / "best.yaml").read_text().splitlines()[:3]
    assert (
        "the base config" in header[0] and "no candidate beat the base config on 3 fresh seeds" in header[1]
    )
    # the base's estimate: seeds that took no part in the decision (it was kept on the selection seeds)
    assert header[2].startswith("# estimate: median") and "3 fresh seeds (950000..950002)" in header[2]
    selection = json.loads((folder / "selection.json").read_text())
    assert [row["label"] for row in selection["rows"]] == ["base", "trial-0", "trial-1"]
    assert selection["pick"] == "base" and "best.yaml is the base config" in result.stdout


def test_a_candidate_that_beats_the_base_on_fresh_seeds_is_picked_with_its_fresh_estimate(
    workdir: Path,
) -> None:
    """A hopeless base (learning rate 1e-4, one gradient step per 256 env steps) against the default's
    learning rate and schedule: on 7 fresh seeds the candidate solves where the base cannot, the
    paired test says so, and best.yaml is the candidate."""
    base = RunConfig(learning_rate=1e-4, train_freq=256, gradient_steps=1, total_timesteps=8000, **QUICK)  # type: ignore[arg-type]
    crafted_study(workdir, "gain", base, [(1.5, {"learning_rate": 0.02, "schedule": "64/48"}), (1.2, {})])
    result = run_module(
        "cartpole_dqn.tune", "--select", "--study-name", "gain", "--validate-seeds", "7", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    folder = workdir / "experiments" / "tuning" / "gain"
    assert load_config(folder / "best.yaml") == base.replace(
        learning_rate=0.02, train_freq=64, gradient_steps=48
    )
    selection = json.loads((folder / "selection.json").read_text())
    assert selection["pick"] == "trial-0"
    picked = next(row for row in selection["rows"] if row["label"] == "trial-0")
    assert picked["beats_base"] and picked["p_value"] <= picked["holm_level"]
    # its estimate comes from 7 more seeds, not from the ones that chose it
    assert selection["estimate_seeds"] == confirmation_seeds(7) and selection["estimate_median"] < 8000
    confirmed = [p for p in (folder / "selection").iterdir() if p.name.startswith("trial-0-seed95")]
    assert len(confirmed) == 7 and "7 fresh seeds (950000..950006)" in (folder / "best.yaml").read_text()
    header = (folder / "best.yaml").read_text().splitlines()[:3]
    assert "trial 0" in header[0] and "beats the base config on 7 fresh seeds" in header[1]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["pick"] == "trial-0" and summary["estimate"] == "fresh seeds"
    assert load(workdir, "gain").user_attrs["pick"]["estimate_median_steps"] == selection["estimate_median"]
