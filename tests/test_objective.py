"""The tuning objective and the tuner's seeds: pure functions, tested without training."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpole_dqn.tuning.objective import CurveScore

BUDGET, EVAL_FREQ = 50_000, 1000
SCORE = CurveScore(BUDGET, EVAL_FREQ, threshold=475.0, floor=0.0)

curves = st.lists(st.floats(min_value=-1e3, max_value=1e4, allow_nan=False), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.integers(min_value=1, max_value=BUDGET),
    solver_curve=curves,
    other_curve=curves,
)
def test_every_solver_within_budget_scores_above_every_non_solver(
    steps: int, solver_curve: list[float], other_curve: list[float]
) -> None:
    assert SCORE.value_of(steps, solver_curve) > SCORE.value_of(None, other_curve)


@given(a=st.integers(min_value=1, max_value=BUDGET), b=st.integers(min_value=1, max_value=BUDGET))
def test_among_solvers_fewer_steps_score_higher(a: int, b: int) -> None:
    if a < b:
        assert SCORE.value_of(a, []) > SCORE.value_of(b, [])


def test_a_solve_past_the_budget_is_no_solve() -> None:
    """SB3 overshoots the budget by up to a train_freq chunk; a solve recorded there is not a solve
    within the budget, so it scores as a non-solver with the same curve, never below one."""
    curve = [100.0, 300.0, 480.0]
    assert SCORE.value_of(BUDGET + 48, curve) == SCORE.value_of(None, curve) < 1.0


def test_non_solvers_are_ranked_by_their_normalized_curve_area() -> None:
    assert SCORE.value_of(None, []) == 0.0
    assert SCORE.value_of(None, [475.0] * 10) == pytest.approx(10 / 50)
    assert SCORE.value_of(None, [237.5] * 50) == pytest.approx(0.5)
    assert SCORE.value_of(None, [-5.0, 1e4]) == pytest.approx(1 / 50)  # clipped to [0, 1] per evaluation
    assert SCORE.value_of(None, [475.0] * 50) < 1.0  # even a whole curve at the threshold stays below 1


def test_tuning_seeds_never_reach_the_validation_seeds() -> None:
    """Disjoint by construction, for any --seed and any seed count."""
    from cartpole_dqn.tuning.seeds import tuning_seeds, validation_seeds

    validation = set(validation_seeds(20))
    for sweep_seed in [0, 1, 88, 89, 90, 1000, 10**6, 2**31 - 1]:
        for count in [1, 3, 10, 1000]:
            seeds = tuning_seeds(sweep_seed, count)
            assert len(set(seeds)) == count and not validation & set(seeds)
    assert tuning_seeds(0, 3) == tuning_seeds(0, 5)[:3]  # growing K keeps the seeds already used
    assert not set(tuning_seeds(0, 3)) & set(tuning_seeds(1, 3))  # another --seed, other seeds


@given(
    st.lists(st.floats(min_value=0.0, max_value=1.999, allow_nan=False), min_size=1, max_size=9),
    st.integers(min_value=0, max_value=9),
)
def test_a_trial_is_a_solver_when_all_seeds_solved_and_the_bound_is_sound(
    values: list[float], done: int
) -> None:
    """The mean is >= 1 when every seed solved (each >= 1) and < 1 when none did; the bound the
    across-seed pruning uses never falls below what the trial ends up scoring."""
    from cartpole_dqn.tuning.objective import best_reachable, trial_value

    if all(v >= 1.0 for v in values):
        assert trial_value(values) >= 1.0
    if all(v < 1.0 for v in values):
        assert trial_value(values) < 1.0
    done = min(done, len(values))
    assert best_reachable(values[:done], len(values)) >= trial_value(values) - 1e-12
    assert best_reachable(values, len(values)) == pytest.approx(trial_value(values))


def test_median_steps_counts_unsolved_seeds_as_never() -> None:
    from cartpole_dqn.tuning.objective import median_steps

    assert median_steps([3000, None, 5000]) == 5000
    assert median_steps([3000, None, None]) == float("inf")
    assert median_steps([3000, 4000]) == 4000  # upper median: what at least half of the seeds reach
    assert median_steps([]) == float("inf")


def test_kendall_tau_counts_ties_as_neither_agreeing_nor_disagreeing() -> None:
    from cartpole_dqn.tuning.selection import kendall_tau

    assert kendall_tau([1, 2, 3], [1, 2, 3]) == 1.0
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 1, 3]) == pytest.approx(2 / 3)  # the tie is not agreement


def random_policy_mean_return(env_id: str, episodes: int) -> float:
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(0)
    total = 0.0
    for episode in range(episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
    env.close()
    return total / episodes


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"])
def test_the_curve_starts_where_acting_at_random_does_on_every_zoo_env(env_id: str) -> None:
    """The reward floor (the return that scores 0) sits at about what a uniformly random policy earns:
    acting at random scores near 0, so the curve measures learning, and a policy halfway from random
    to the threshold scores about half. LunarLander's threshold is positive (200) but its returns are
    not (random: about -190), so a floor of 0 would score every early LunarLander curve 0 alike."""
    from cartpole_dqn.config import RunConfig
    from cartpole_dqn.run.envs import env_info_of

    env = env_info_of(RunConfig(env_id=env_id))
    score = CurveScore(BUDGET, EVAL_FREQ, env.threshold, env.reward_floor)
    random_return = random_policy_mean_return(env_id, 30)
    assert env.reward_floor <= random_return + 40  # at or just below random (30 episodes: noisy)
    assert score.normalized(random_return) < 0.15
    # Two non-solvers that both earn less than 0 per episode are still told apart.
    better, worse = [random_return + 0.5 * (env.threshold - random_return)] * 5, [random_return] * 5
    assert score.value_of(None, better) > score.value_of(None, worse)
