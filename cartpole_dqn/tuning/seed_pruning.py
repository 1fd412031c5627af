"""Pruning across a trial's seeds: when a trial stops training further seeds.

Every trial trains on the sweep's common tuning seeds, one after another, so after ``r`` seeds a
trial can be compared *paired* with every other trial that has run those same ``r`` seeds. The
rules here are pure functions of per-seed values (see :mod:`cartpole_dqn.tuning.objective`);
:mod:`cartpole_dqn.tuning.sweep` applies them after each seed, besides the in-run pruner.

- ``reachable`` (every pruner): a trial whose mean can no longer reach 1, what any trial that
  solves all its seeds scores, is stopped once the study holds a complete trial at 1 or above.
- ``halving``: successive halving over seeds (Jamieson & Talwalkar 2016; asynchronous as in
  Li et al. 2020, ASHA): every trial first trains ``K`` seeds; only a trial whose mean over them
  ranks in the top third of the trials that ran those ``K`` seeds earns ``K`` more. Complete
  trials have ``2K`` seeds, so the configs that are finally ranked were each measured twice as often.
- ``wilcoxon``: every trial may train ``2K`` seeds, and after each one it stops when a one-sided
  Wilcoxon signed-rank test on the seeds so far says it is worse than the study's best complete
  trial (p < 0.1), as Optuna's ``WilcoxonPruner`` does with seeds as its instances.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cartpole_dqn.run.stats import wilcoxon_signed_rank_p

HALVING_ETA = 3  # the fraction of trials promoted at a rung is 1 / eta
WILCOXON_P = 0.1  # Optuna's WilcoxonPruner default p_threshold

SEED_PRUNERS = ("median", "halving", "wilcoxon", "none")


def max_seeds(pruner: str, seeds_per_trial: int) -> int:
    """The most seeds a trial trains under ``pruner``: ``K``, or ``2K`` where seeds are earned."""
    return 2 * seeds_per_trial if pruner in ("halving", "wilcoxon") else seeds_per_trial


def rung_mean(values: Sequence[float], rung: int) -> float:
    return sum(values[:rung]) / rung


def halving_promotes(mine: Sequence[float], others: Sequence[Sequence[float]], rung: int) -> bool:
    """Whether a trial that has just run ``rung`` seeds ranks among the top 1/eta of every trial that
    ran them (its ``others`` with at least ``rung`` per-seed values; the rest are ignored)."""
    pool = [rung_mean(values, rung) for values in others if len(values) >= rung]
    own = rung_mean(mine, rung)
    rank = 1 + sum(value > own for value in pool)
    return rank <= max(1, math.ceil((len(pool) + 1) / HALVING_ETA))


def wilcoxon_worse(mine: Sequence[float], best: Sequence[float]) -> bool:
    """Whether ``mine`` is significantly worse than ``best`` on the seeds both ran (one-sided, paired)."""
    shared = min(len(mine), len(best))
    differences = [best[i] - mine[i] for i in range(shared)]
    return wilcoxon_signed_rank_p(differences) < WILCOXON_P
