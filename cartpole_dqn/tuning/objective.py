"""The number Optuna maximizes, and the intermediate values it prunes on.

Objective (maximize), from the solve callback's evaluations of one trial:

- a trial that solves within the budget gets ``1 + (1 - steps_to_solve / budget)``: at least 1,
  higher the sooner (a solve recorded past the budget is no solve);
- a trial that does not gets the area under its normalized eval-reward curve, in [0, 1):
  the mean over the ``budget / eval_freq`` evaluation slots of
  ``clip((mean_return - floor) / (threshold - floor), 0, 1)`` (slots not reached count 0).
  The floor is the env's: about what a uniformly random policy earns (``run.envs.reward_floor``).

So every solver ranks above every non-solver, and among solvers fewer steps win. The value
reported after each evaluation is the same quantity computed on the evaluations so far; it only
grows as training goes on, a solved trial jumps above 1 and keeps its solved value for the
remaining evaluation steps, so the pruner always compares like with like, in the objective's
direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cartpole_dqn.run.solve import SolveState


def run_span(budget: int, eval_freq: int) -> int:
    """Steps one seed's run covers in a multi-seed trial's report steps: its evaluation slots."""
    return max(math.ceil(budget / eval_freq), 1) * eval_freq


@dataclass(frozen=True)
class CurveScore:
    budget: int
    eval_freq: int
    threshold: float
    floor: float

    @property
    def slots(self) -> int:
        return max(math.ceil(self.budget / self.eval_freq), 1)

    @property
    def span(self) -> int:
        """Steps one seed's run covers in a multi-seed trial's report steps."""
        return run_span(self.budget, self.eval_freq)

    def normalized(self, mean_return: float) -> float:
        return min(max((mean_return - self.floor) / (self.threshold - self.floor), 0.0), 1.0)

    def value(self, state: SolveState) -> float:
        """The value after the evaluations in ``state`` so far."""
        return self.value_of(state.steps_to_solve if state.solved else None, [r.mean for r in state.history])

    def value_of(self, steps_to_solve: int | None, eval_means: Sequence[float]) -> float:
        """The value of a trial that solved at ``steps_to_solve`` (None: unsolved) with these evaluations."""
        if steps_to_solve is not None and steps_to_solve <= self.budget:
            return 1.0 + (1.0 - steps_to_solve / self.budget)
        area = sum(self.normalized(mean) for mean in eval_means) / self.slots
        return min(area, math.nextafter(1.0, 0.0))

    def remaining_steps(self, after_step: int) -> range:
        """Evaluation steps after ``after_step`` up to the budget (a solved trial reports at them too)."""
        first = (after_step // self.eval_freq + 1) * self.eval_freq
        return range(first, self.budget + 1, self.eval_freq)


# --- one trial, several seeds ---
#
# A trial's value is the *mean* of its per-seed values. Each per-seed value is bounded ([0, 1) for a
# run that did not solve, [1, 2) for one that did), so no single seed can dominate the mean the way
# an unbounded step count could; and what a tuned config must reproduce on a new seed is its
# expected outcome, failures included. A median of three seeds ignores one failed seed in three;
# measured on a 50-trial sweep (K = 3), the median's top config solved 4 of 10 fresh seeds
# (2000-2009), while the mean's top three configs from the same trials each solved 10 of 10
# (experiments/results/tuning.md). So: every seed counts, unsolved seeds with their (< 1) curve
# value, never dropped. A trial that solved all its seeds scores >= 1, one that solved none < 1.
# The steps estimate shown beside it is the upper median of steps to solve, unsolved = never.

# A run's value is below this, whatever it does (a solve at step 0 would score 2).
MAX_SEED_VALUE = 2.0


def trial_value(seed_values: Sequence[float]) -> float:
    """The trial's value from its per-seed values (their mean)."""
    return sum(seed_values) / len(seed_values)


def best_reachable(done_values: Sequence[float], seeds: int) -> float:
    """The most a trial with these finished per-seed values can still score over ``seeds`` seeds."""
    return (sum(done_values) + MAX_SEED_VALUE * (seeds - len(done_values))) / seeds


def median_steps(steps_to_solve: Sequence[int | None]) -> float:
    """The upper median of steps to solve, an unsolved run counting as never (``inf``)."""
    ordered = sorted(math.inf if s is None else float(s) for s in steps_to_solve)
    return ordered[len(ordered) // 2] if ordered else math.inf
