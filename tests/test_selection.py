"""The tuner's answer: spaces that contain their base, seed-level pruning, and the paired pick on
fresh seeds. Pure functions, tested without training (the CLI path is in test_tune.py)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.run.stats import (
    bootstrap_harrell_davis_ci,
    harrell_davis_median,
    harrell_davis_weights,
    wilcoxon_signed_rank_p,
)
from cartpole_dqn.tuning.seed_pruning import halving_promotes, max_seeds, wilcoxon_worse
from cartpole_dqn.tuning.selection import (
    BASE,
    Candidate,
    SeedOutcome,
    Selection,
    candidates,
    censored_text,
    config_digest,
    decide,
    selection_table,
)
from cartpole_dqn.tuning.space import SPACES, base_params, distributions, overrides_from_params, suggest
from tests.conftest import REPO

CONFIGS = sorted((REPO / "experiments" / "configs").glob("*.yaml"))


# --- every space contains its base config ---


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_space_contains_its_base_config(path: Path, space: str) -> None:
    base = load_config(path)
    point = base_params(space, base)
    dists = distributions(space, base)
    assert set(point) == set(dists)
    for name, value in point.items():
        assert dists[name]._contains(dists[name].to_internal_repr(value)), (name, value, dists[name])
    # the point decodes back to the base config itself, through the same path a trial takes
    assert base.replace(**overrides_from_params(point)) == base
    assert base.replace(**suggest(optuna.trial.FixedTrial(point), space, base)) == base


def test_the_full_space_holds_the_defaults_learning_rate_and_schedule_and_more() -> None:
    dists = distributions("full", RunConfig())
    lr = dists["learning_rate"]
    assert isinstance(lr, optuna.distributions.FloatDistribution)
    assert lr.low <= 0.02 <= lr.high and lr.low <= 1e-4 and lr.log
    schedule = dists["schedule"]
    assert isinstance(schedule, optuna.distributions.CategoricalDistribution)
    assert {"64/48", "256/128", "16/8"} <= set(schedule.choices)


def test_a_base_outside_the_listed_ranges_widens_them() -> None:
    base = RunConfig(
        gamma=1.0, exploration_final_eps=0.0, target_update_interval=7, train_freq=4, gradient_steps=4
    )
    dists = distributions("full", base)
    assert dists["gamma"].high == 1.0 and dists["exploration_final_eps"].low == 0.0  # type: ignore[attr-defined]
    assert 7 in dists["target_update_interval"].choices  # type: ignore[attr-defined]
    assert "4/4" in dists["schedule"].choices  # type: ignore[attr-defined]


def test_a_stock_sb3_base_keeps_its_plug_ins_off() -> None:
    dists = distributions("full", load_config(REPO / "experiments" / "configs" / "sb3_zoo_baseline.yaml"))
    for name, only in (("policy", "MlpPolicy"), ("double_q", False), ("prioritized_replay", False)):
        assert dists[name].choices == (only,)  # type: ignore[attr-defined]
    assert len(dists["schedule"].choices) > 1 and len(dists["network"].choices) > 1  # type: ignore[attr-defined]


# --- the Wilcoxon signed-rank test and seed-level pruning ---


def brute_force_p(differences: list[float]) -> float:
    """P(positive rank sum >= observed) over all sign patterns, ranks from the definition."""
    nonzero = [d for d in differences if d != 0]
    if not nonzero:
        return 1.0
    magnitudes = [abs(d) for d in nonzero]
    ranks = [sum(m < x for m in magnitudes) + (sum(m == x for m in magnitudes) + 1) / 2 for x in magnitudes]
    observed = sum(r for r, d in zip(ranks, nonzero, strict=True) if d > 0)
    patterns = list(itertools.product([False, True], repeat=len(nonzero)))
    hits = sum(
        sum(r for r, s in zip(ranks, signs, strict=True) if s) >= observed - 1e-9 for signs in patterns
    )
    return hits / len(patterns)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=-4, max_value=4).map(lambda k: 500.0 * k), min_size=0, max_size=11))
def test_wilcoxon_p_equals_the_brute_force_sign_flip_count(differences: list[float]) -> None:
    assert wilcoxon_signed_rank_p(differences) == pytest.approx(brute_force_p(differences), abs=1e-12)


def test_wilcoxon_known_values() -> None:
    assert wilcoxon_signed_rank_p([1.0] * 10) == pytest.approx(1 / 1024)
    assert wilcoxon_signed_rank_p([1, 2, 3, 4, 5]) == pytest.approx(1 / 32)
    assert wilcoxon_signed_rank_p([-1.0] * 5) == 1.0
    assert wilcoxon_signed_rank_p([0.0, 0.0]) == 1.0


def test_harrell_davis_weights_match_the_beta_distribution_in_closed_form() -> None:
    """n = 3: Beta(2, 2), whose distribution function is 3x^2 - 2x^3, gives weights 7/27, 13/27, 7/27."""
    assert harrell_davis_weights(1).tolist() == pytest.approx([1.0])
    assert harrell_davis_weights(2).tolist() == pytest.approx([0.5, 0.5])
    assert harrell_davis_weights(3).tolist() == pytest.approx([7 / 27, 13 / 27, 7 / 27], abs=1e-9)
    for n in (10, 40, 101):
        w = harrell_davis_weights(n)
        assert w.sum() == pytest.approx(1.0) and np.allclose(w, w[::-1])  # symmetric: the median
    assert harrell_davis_median([4000.0] * 9) == pytest.approx(4000.0)
    # between the two middle values of tied data, where a sample median sits on one of them
    data = [2000.0] * 8 + [3000.0] * 13 + [4000.0] * 11 + [5000.0] * 8
    assert float(np.median(data)) == 3000.0 and 3000.0 < harrell_davis_median(data) < 4000.0
    low, high = bootstrap_harrell_davis_ci(data, np.random.default_rng(0), resamples=2000)
    assert low < harrell_davis_median(data) < high


def test_halving_promotes_the_top_third_of_the_trials_that_ran_the_rung() -> None:
    others = [[1.5, 1.5, 1.5], [1.2, 1.2, 1.2], [0.5, 0.5, 0.5], [0.4, 0.4, 0.4], [1.9], [0.1, 0.1, 0.1]]
    # five trials ran 3 seeds (the one-seed trial does not count); with this one, six: top 2 go on
    assert halving_promotes([1.6, 1.6, 1.6], others, 3)
    assert halving_promotes([1.3, 1.3, 1.3], others, 3)
    assert not halving_promotes([1.0, 1.0, 1.0], others, 3)
    assert halving_promotes([0.0, 0.0, 0.0], [], 3)  # the first trial to get there always goes on
    assert max_seeds("halving", 3) == 6 and max_seeds("median", 3) == 3 and max_seeds("wilcoxon", 2) == 4


def test_wilcoxon_pruning_needs_consistent_evidence() -> None:
    best = [1.9, 1.9, 1.8, 1.9, 1.9, 1.9]
    assert wilcoxon_worse([1.2, 1.3, 1.1, 1.4], best)  # worse on 4 of 4: p = 1/16 < 0.1
    assert not wilcoxon_worse([1.2, 1.3, 1.1], best)  # 3 seeds can never reach p < 0.1
    assert not wilcoxon_worse([1.95, 1.3, 1.99, 1.4], best)


# --- the pick ---

BUDGET = 50_000


def outcomes(
    steps: list[int | None], stays: list[bool] | None = None, first_seed: int = 900_000
) -> list[SeedOutcome]:
    return [
        SeedOutcome(
            seed=first_seed + i,
            solved=s is not None,
            steps_to_solve=s,
            wall_to_solve_s=None if s is None else 1.0,
            stays_solved=s is not None and (stays is None or stays[i]),
            budget=BUDGET,
            eval_mean=500.0,
        )
        for i, s in enumerate(steps)
    ]


def cand(label: str, rank: int | None = None, **changes: object) -> Candidate:
    config = RunConfig(**changes)  # type: ignore[arg-type]
    return Candidate(label, config, None if rank is None else rank, rank, None if rank is None else 1.9)


SEEDS = list(range(900_000, 900_010))


def test_when_no_candidate_beats_the_base_the_pick_is_the_base() -> None:
    base = [4000, 3000, 5000, 4000, 3000, 6000, 4000, 5000, 3000, 4000]
    cands = [cand(BASE), cand("trial-7", 1, gamma=0.98), cand("trial-3", 2, gamma=0.97)]
    got = decide(
        cands,
        {
            BASE: outcomes(base),  # type: ignore[arg-type]
            "trial-7": outcomes([s - 1000 for s in base[:5]] + [s + 1000 for s in base[5:]]),
            "trial-3": outcomes([None] * 10),
        },
        SEEDS,
    )
    assert got.pick == BASE and "best.yaml is the base config" in got.reason
    assert got.estimate_median == pytest.approx(harrell_davis_median(base)) and got.estimate_solved == 10
    assert all(not row.beats_base for row in got.rows[1:])
    assert got.rows[2].paired_median == float(np.median([BUDGET - s for s in base]) * -1)


def test_a_candidate_faster_on_every_fresh_seed_is_picked_with_its_own_estimate() -> None:
    base = [4000, 3000, 5000, 4000, 3000, 6000, 4000, 5000, 3000, 4000]
    fast = [s - 1000 for s in base]
    faster = [s - 2000 if s > 3000 else s - 1000 for s in base]
    cands = [cand(BASE), cand("trial-7", 1, gamma=0.98), cand("trial-9", 2, gamma=0.97)]
    got = decide(cands, {BASE: outcomes(base), "trial-7": outcomes(fast), "trial-9": outcomes(faster)}, SEEDS)  # type: ignore[arg-type]
    assert {row.label for row in got.rows if row.beats_base} == {"trial-7", "trial-9"}
    assert got.pick == "trial-9"  # the larger median paired gain
    assert got.estimate_median == pytest.approx(harrell_davis_median(faster)) and got.estimate_seeds == SEEDS
    later = got.confirmed(outcomes([3000, 4000, 5000], first_seed=950_000))  # on seeds that did not choose it
    assert later.estimate_median == pytest.approx(4000) and later.estimate_seeds == [
        950_000,
        950_001,
        950_002,
    ]
    assert later.pick == "trial-9" and "3 fresh seeds (950000..950002)" in later.estimate_text()
    row = got.picked
    assert row.p_value == pytest.approx(1 / 1024) and row.faster_on == 10 and row.slower_on == 0
    table = selection_table(got, 475.0)
    assert "**pick**" in table and "trial-9" in table and "Holm" in table


def test_holm_holds_the_second_candidate_to_a_stricter_level() -> None:
    """p = 1/64 passes alone (0.05) but not as the weaker of three (0.05 / 2 after 1/1024)."""
    base = [4000] * 10
    six_of_ten = [3000] * 6 + [4000] * 4  # faster on 6 seeds, tied on 4: p = 1/64
    cands = [
        cand(BASE),
        cand("trial-1", 1, gamma=0.98),
        cand("trial-2", 2, gamma=0.97),
        cand("trial-3", 3, gamma=0.96),
    ]
    alone = decide(cands[:2], {BASE: outcomes(base), "trial-1": outcomes(six_of_ten)}, SEEDS)  # type: ignore[arg-type]
    assert alone.pick == "trial-1"
    three = decide(
        cands,
        {
            BASE: outcomes(base),
            "trial-1": outcomes(six_of_ten),
            "trial-2": outcomes([3000] * 10),
            "trial-3": outcomes(base),
        },  # type: ignore[arg-type]
        SEEDS,
    )
    rows = {row.label: row for row in three.rows}
    assert rows["trial-2"].beats_base and rows["trial-2"].holm_level == pytest.approx(0.05 / 3)
    assert rows["trial-1"].holm_level == pytest.approx(0.05 / 2) and rows["trial-1"].p_value == pytest.approx(
        1 / 64
    )
    assert rows["trial-1"].beats_base  # 1/64 = 0.0156 <= 0.025
    assert not rows["trial-3"].beats_base


def test_a_faster_candidate_that_stays_solved_less_often_is_not_picked() -> None:
    base = [4000] * 10
    got = decide(
        [cand(BASE), cand("trial-1", 1, gamma=0.98)],
        {BASE: outcomes(base), "trial-1": outcomes([2000] * 10, stays=[True] * 8 + [False] * 2)},  # type: ignore[arg-type]
        SEEDS,
    )
    assert got.pick == BASE and "stays solved on fewer seeds" in got.rows[1].note


def test_candidates_are_the_base_then_distinct_top_trials() -> None:
    base = RunConfig()
    space_point = base_params("core", base)
    dists = distributions("core", base)

    def trial(number: int, value: float, **params: object) -> optuna.trial.FrozenTrial:
        t = optuna.trial.create_trial(value=value, params={**space_point, **params}, distributions=dists)
        t.number = number
        return t

    ranked = [
        trial(4, 1.95, gamma=0.98),
        trial(0, 1.9),  # the base itself (trial 0)
        trial(7, 1.85, gamma=0.98),  # the same config as trial 4
        trial(2, 1.8, batch_size=128),
        trial(5, 1.7, batch_size=256),
        trial(6, 1.6, batch_size=32),
    ]
    got = candidates(ranked, base)
    assert [c.label for c in got] == [BASE, "trial-4", "trial-2", "trial-5"]
    assert got[0].config == base and got[0].sweep_rank == 2 and got[0].trial == 0
    assert len({config_digest(c.config) for c in got}) == 4
    assert config_digest(base) == config_digest(base.replace(seed=123))  # the seed is not part of it
    assert math.isfinite(got[1].sweep_value or math.nan)


# --- every figure right: unsolved majorities, the budget with a tolerance, one answer per study ---


def test_an_estimate_with_half_or_more_seeds_unsolved_says_unsolved_not_a_step_count() -> None:
    """11 of 20 unsolved used to print "39,802 (95% CI 18,712-49,771)"; all unsolved, "50,000"."""
    base = cand(BASE)
    got = decide([base], {BASE: outcomes([4000] * 10)}, SEEDS)  # type: ignore[arg-type]
    eleven = outcomes([3000] * 9 + [None] * 11, first_seed=950_000)  # type: ignore[list-item]
    text = got.confirmed(eleven).estimate_text()
    assert "unsolved (more than the 50,000-step budget)" in text and "9/20 solved" in text
    assert not any(ch.isdigit() for ch in text.split("unsolved", 1)[0]), text
    everything = got.confirmed(outcomes([None] * 20, first_seed=950_000)).estimate_text()
    assert "unsolved (more than the 50,000-step budget)" in everything and "50,000 steps" not in everything
    assert "(Harrell-Davis" in got.confirmed(outcomes([3000] * 11 + [None] * 9)).estimate_text()


def test_a_figure_within_half_a_step_of_the_budget_is_unsolved() -> None:
    assert censored_text(49_999.99999, 50_000) == "unsolved"
    assert censored_text(50_000.0, 50_000) == "unsolved" and censored_text(49_000.0, 50_000) == "49,000"


def test_a_median_never_averages_a_solve_with_the_budget() -> None:
    """An even count with exactly half unsolved: np.median printed 35,000, a figure no run reached."""
    half = outcomes([20_000] * 5 + [None] * 5)  # type: ignore[list-item]
    fewer = outcomes([20_000] * 6 + [None] * 4)  # type: ignore[list-item]
    got = decide([cand(BASE), cand("trial-1", 1, gamma=0.98)], {BASE: half, "trial-1": fewer}, SEEDS)
    base_row, other = got.rows
    assert math.isinf(base_row.median_steps) and other.median_steps == 20_000
    table = selection_table(got, 475.0)
    assert "| unsolved [" in table and "35,000" not in table


def test_the_estimate_does_not_depend_on_the_order_the_runs_finished_in() -> None:
    got = decide([cand(BASE)], {BASE: outcomes([4000] * 10)}, SEEDS)  # type: ignore[arg-type]
    runs = outcomes([3000, 4000, 9000, 5000, 2000, None, 7000, 3000], first_seed=950_000)  # type: ignore[list-item]
    shuffled = [runs[i] for i in (3, 7, 0, 5, 1, 6, 2, 4)]
    assert got.confirmed(runs) == got.confirmed(shuffled)


def test_a_recorded_selection_renders_the_same_table() -> None:
    """``tune --report`` re-renders the study's recorded selection: the same figures every time."""
    base = [4000, 3000, None, 4000, 3000, 6000, None, 5000, None, None]
    cands = [cand(BASE), cand("trial-7", 1, gamma=0.98)]
    got = decide(cands, {BASE: outcomes(base), "trial-7": outcomes([3000] * 10)}, SEEDS)  # type: ignore[arg-type]
    got = got.confirmed(outcomes([3000, None, 4000], first_seed=950_000))  # type: ignore[list-item]
    import json

    again = Selection.from_dict(json.loads(json.dumps(got.to_dict(), allow_nan=False)))
    assert selection_table(again, 475.0) == selection_table(got, 475.0)
