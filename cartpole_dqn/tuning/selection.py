"""The pick: the sweep's top configs and the base config, re-trained on fresh seeds, compared paired.

A sweep ranks 50 configs on a few tuning seeds, so its best is the luckiest as much as the best
(the winner's curse), and its own value overstates how well the config does on a new seed. So the
tuner does not trust that ranking for its answer:

1. the candidates are the base config the sweep started from and the sweep's top ``TOP`` complete
   trials (configs equal to the base or to a better-ranked candidate are skipped);
2. each is re-trained on ``N`` seeds no trial used (:func:`cartpole_dqn.tuning.seeds.validation_seeds`),
   the same seeds for all, through the same runner as ``train``;
3. each trial candidate is compared with the base *paired by seed*: per seed, the base's steps to
   solve minus the candidate's, an unsolved run counting as the full budget; a candidate beats the
   base when a one-sided Wilcoxon signed-rank test (Wilcoxon 1945) rejects "no better" at
   ``ALPHA`` = 0.05 after Holm's correction for the several candidates (Holm 1979), and it stays
   solved on at least as many seeds as the base;
4. the pick is the candidate that beats the base by the largest median paired difference, or the
   base config itself when none does: the answer never loses to where the user started;
5. the estimate reported for the pick is its median steps to solve (unsolved counted as the budget;
   the Harrell-Davis estimate, Harrell & Davis 1982: steps come in multiples of the evaluation
   interval, where a sample median jumps a whole interval) with a bootstrap 95% CI, measured on
   ``N`` more seeds that did not take part in the decision
   (:func:`cartpole_dqn.tuning.seeds.confirmation_seeds`), never the sweep's value nor the
   selection seeds: a winning candidate's selection-seed median is the best of several, and the
   base config is kept precisely when no candidate beat it on those seeds, so its results there are
   a selected sample too. When half or more of those seeds are unsolved the estimate is "unsolved
   (more than the budget)", never a step count.

The table shows each candidate's sample median on the selection seeds (an unsolved run counting as
slower than any solve; "unsolved" when half or more are): the figures the decision was made on.

Every finished re-training run is recorded in the study (user attribute ``selection:<config
digest>:<seed>``), so an interrupted or extended selection re-uses it; the finished selection is
recorded as the study attribute ``selection``, which ``tune --report`` shows without training.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cartpole_dqn.config import RunConfig
from cartpole_dqn.run.stats import (
    bootstrap_censored_median_ci,
    bootstrap_harrell_davis_ci,
    bootstrap_median_ci,
    censored_median,
    harrell_davis_median,
    unsolved_majority,
    wilcoxon_signed_rank_p,
)
from cartpole_dqn.run.verdict import plural

if TYPE_CHECKING:
    import optuna

    from cartpole_dqn.run.results import RunResult

TOP = 3  # trial candidates besides the base config
ALPHA = 0.05  # family-wise error rate of "this candidate beats the base" over the candidates
BASE = "base"


@dataclass(frozen=True)
class Candidate:
    """A config that competes for the pick: the base (``trial`` None) or one of the sweep's top trials."""

    label: str
    config: RunConfig
    trial: int | None = None
    sweep_rank: int | None = None
    sweep_value: float | None = None
    sweep_estimate: float = math.inf  # upper median steps to solve over its tuning seeds

    @property
    def is_base(self) -> bool:
        return self.label == BASE


@dataclass(frozen=True)
class SeedOutcome:
    """What one re-training run of a candidate gave (solved: within the budget)."""

    seed: int
    solved: bool
    steps_to_solve: int | None
    wall_to_solve_s: float | None
    stays_solved: bool
    budget: int
    eval_mean: float
    train_wall_s: float | None = None  # the run's whole training wall (None: recorded by an earlier version)
    diverged: bool = False

    @property
    def solve_or_none(self) -> float | None:
        """Steps to solve, None when unsolved (for the censored medians)."""
        return float(self.steps_to_solve) if self.solved and self.steps_to_solve is not None else None

    @property
    def censored_steps(self) -> float:
        """Steps to solve, an unsolved run counting as the whole budget."""
        return (
            float(self.steps_to_solve)
            if self.solved and self.steps_to_solve is not None
            else float(self.budget)
        )

    @classmethod
    def of(cls, result: RunResult) -> SeedOutcome:
        from cartpole_dqn.run.stats import solved_within

        solved = solved_within(result)
        return cls(
            seed=result.seed,
            solved=solved,
            steps_to_solve=result.steps_to_solve if solved else None,
            wall_to_solve_s=result.wall_to_solve_s if solved else None,
            stays_solved=solved and result.stays_solved,
            budget=result.budget,
            eval_mean=result.eval_mean,
            train_wall_s=result.train_wall_s,
            diverged=result.diverged is not None,
        )


@dataclass
class Row:
    """One candidate's fresh-seed figures, and its paired comparison with the base."""

    label: str
    trial: int | None
    sweep_rank: int | None
    sweep_value: float | None
    sweep_estimate: float
    outcomes: list[SeedOutcome]
    median_steps: float = math.nan  # sample median on the selection seeds; inf: half or more unsolved
    median_ci95: tuple[float, float] = (math.nan, math.nan)  # a bound may be inf (unsolved)
    solved: int = 0
    stays_solved: int = 0
    paired_median: float | None = None  # base - candidate steps, per seed; > 0: the candidate is faster
    paired_mean: float | None = None
    paired_ci95: tuple[float, float] | None = None
    faster_on: int = 0
    slower_on: int = 0
    p_value: float | None = None  # one-sided Wilcoxon: the candidate needs fewer steps than the base
    holm_level: float | None = None  # the level its p-value was held to
    beats_base: bool = False
    note: str = ""


@dataclass
class Selection:
    """The outcome: every candidate's row, the pick, and its fresh-seed estimate."""

    seeds: list[int]
    rows: list[Row]
    pick: str
    reason: str
    estimate_median: float
    estimate_ci95: tuple[float, float]
    estimate_solved: int
    estimate_stays_solved: int
    kendall_tau: float = math.nan  # the sweep's order of its top trials against their fresh-seed order
    estimate_seeds: list[int] = field(default_factory=list)  # the seeds the estimate is measured on
    estimate_budget: int = 0

    @property
    def picked(self) -> Row:
        return next(row for row in self.rows if row.label == self.pick)

    @property
    def estimate_unsolved(self) -> bool:
        """Half or more of the estimate's seeds unsolved: its median is "unsolved", not a step count."""
        runs = len(self.estimate_seeds)
        return unsolved_majority(runs - self.estimate_solved, runs)

    def estimate_text(self) -> str:
        low, high = self.estimate_ci95
        seeds, budget = self.estimate_seeds, self.estimate_budget
        runs = len(seeds)
        where = (
            f"on {plural(runs, 'fresh seed')} ({seed_ranges(seeds)}), {self.estimate_solved}/{runs} solved, "
            f"{self.estimate_stays_solved}/{runs} stay solved"
        )
        if self.estimate_unsolved:
            return f"median steps to solve: unsolved (more than the {budget:,}-step budget) {where}"
        return (
            f"median {censored_text(self.estimate_median, budget)} steps to solve (Harrell-Davis; 95% CI "
            f"{censored_text(low, budget)}–{censored_text(high, budget)}; unsolved = the {budget:,}-step "
            f"budget) {where}"
        )

    def confirmed(self, outcomes: Sequence[SeedOutcome]) -> Selection:
        """This selection with the pick's estimate taken from ``outcomes``: the pick re-trained on seeds
        that did not take part in the decision (in seed order, so the bootstrap is the same however
        the runs finished)."""
        runs = sorted(outcomes, key=lambda o: o.seed)
        steps = [o.censored_steps for o in runs]
        return replace(
            self,
            estimate_median=harrell_davis_median(steps),
            estimate_ci95=bootstrap_harrell_davis_ci(steps, np.random.default_rng(1)),
            estimate_solved=sum(o.solved for o in runs),
            estimate_stays_solved=sum(o.stays_solved for o in runs),
            estimate_seeds=[o.seed for o in runs],
            estimate_budget=runs[0].budget,
        )

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON: a median or bound that is "unsolved", a sweep estimate that is "never" (both
        ``inf`` here) and an undefined rank agreement (``nan``) are written as null."""
        return _json_ready(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        """The selection :meth:`to_dict` wrote (as recorded in the study)."""
        rows = []
        for raw in data["rows"]:
            row = dict(raw)
            row["outcomes"] = [SeedOutcome(**o) for o in row["outcomes"]]
            row["median_steps"] = _inf_if_none(row["median_steps"])
            row["median_ci95"] = tuple(_inf_if_none(v) for v in row["median_ci95"])
            row["sweep_estimate"] = _inf_if_none(row["sweep_estimate"])
            if row["paired_ci95"] is not None:
                row["paired_ci95"] = tuple(row["paired_ci95"])
            rows.append(Row(**row))
        tau = data.get("kendall_tau")
        return cls(
            **{
                **data,
                "rows": rows,
                "estimate_ci95": tuple(data["estimate_ci95"]),
                "kendall_tau": math.nan if tau is None else tau,
            }
        )


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _inf_if_none(value: float | None) -> float:
    return math.inf if value is None else value


def seed_results(trial: optuna.trial.FrozenTrial) -> list[dict[str, Any]]:
    """The trial's per-seed results (a one-seed study from before multi-seed trials: its one run)."""
    attrs = trial.user_attrs
    if "seed_results" in attrs:
        return list(attrs["seed_results"])
    if "seed" not in attrs:
        return []
    return [
        {
            "seed": attrs["seed"],
            "solved": bool(attrs.get("solved")),
            "steps_to_solve": attrs.get("steps_to_solve"),
            "wall_to_solve_s": attrs.get("wall_to_solve_s"),
        }
    ]


def sweep_estimate(trial: optuna.trial.FrozenTrial) -> float:
    """The trial's steps to solve as the sweep saw it: the upper median over its seeds (unsolved: inf)."""
    from cartpole_dqn.tuning.objective import median_steps

    return median_steps([r["steps_to_solve"] if r["solved"] else None for r in seed_results(trial)])


def config_digest(config: RunConfig) -> str:
    """A short name for a config whatever its seed (re-training runs are cached under it)."""
    text = json.dumps(config.replace(seed=0).to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def candidates(
    ranked: Sequence[optuna.trial.FrozenTrial], base: RunConfig, top: int = TOP
) -> list[Candidate]:
    """The base config, then the best ``top`` ranked trials whose configs differ from it and each other.

    The base keeps the sweep figures of its best-ranked trial (trial 0 is the base, enqueued)."""
    from cartpole_dqn.tuning.space import overrides_from_params

    base_digest = config_digest(base)
    out = [Candidate(BASE, base)]
    seen = {base_digest}
    for rank, trial in enumerate(ranked, start=1):
        config = base.replace(**overrides_from_params(trial.params))
        digest = config_digest(config)
        found = Candidate(
            f"trial-{trial.number}", config, trial.number, rank, trial.value, sweep_estimate(trial)
        )
        if digest == base_digest and out[0].trial is None:
            out[0] = replace(found, label=BASE)
        if digest in seen or len(out) > top:
            continue
        seen.add(digest)
        out.append(found)
    return out


def decide(cands: Sequence[Candidate], outcomes: dict[str, list[SeedOutcome]], seeds: list[int]) -> Selection:
    """Paired comparisons with the base, Holm's step-down over the candidates, the pick and its estimate."""
    rng = np.random.default_rng(0)
    rows: list[Row] = []
    for cand in cands:
        runs = sorted(outcomes[cand.label], key=lambda o: o.seed)
        solves = [o.solve_or_none for o in runs]
        rows.append(
            Row(
                cand.label,
                cand.trial,
                cand.sweep_rank,
                cand.sweep_value,
                cand.sweep_estimate,
                runs,
                median_steps=censored_median(solves),
                median_ci95=bootstrap_censored_median_ci(solves, rng),
                solved=sum(o.solved for o in runs),
                stays_solved=sum(o.stays_solved for o in runs),
            )
        )
    base = rows[0]
    base_by_seed = {o.seed: o.censored_steps for o in base.outcomes}
    trials = rows[1:]
    for row in trials:
        diffs = [base_by_seed[o.seed] - o.censored_steps for o in row.outcomes]
        row.paired_median = float(np.median(diffs))
        row.paired_mean = float(np.mean(diffs))
        row.paired_ci95 = bootstrap_median_ci(diffs, rng)
        row.faster_on = sum(d > 0 for d in diffs)
        row.slower_on = sum(d < 0 for d in diffs)
        row.p_value = wilcoxon_signed_rank_p(diffs)
    # Holm's step-down: the k-th smallest p-value (from 0) is held to ALPHA / (m - k); stop at the first miss.
    for k, row in enumerate(sorted(trials, key=lambda r: (r.p_value or 1.0, r.sweep_rank or 0))):
        row.holm_level = ALPHA / (len(trials) - k)
    rejecting = True
    for row in sorted(trials, key=lambda r: (r.p_value or 1.0, r.sweep_rank or 0)):
        rejecting = rejecting and (row.p_value or 1.0) <= (row.holm_level or 0.0)
        if not rejecting:
            row.note = "not significantly faster than the base"
        elif row.stays_solved < base.stays_solved:
            row.note = "faster, but stays solved on fewer seeds than the base"
        else:
            row.beats_base = True
            row.note = "beats the base"
    winners = [r for r in trials if r.beats_base]
    n_seeds = len(seeds)
    if winners:
        pick = max(
            winners, key=lambda r: (r.paired_median or 0.0, r.paired_mean or 0.0, -(r.sweep_rank or 0))
        )
        low, high = pick.paired_ci95 or (math.nan, math.nan)
        reason = (
            f"{pick.label} beats the base config on {plural(n_seeds, 'fresh seed')}: "
            f"median {pick.paired_median:,.0f} "
            f"fewer steps to solve (95% CI {low:+,.0f} to {high:+,.0f}), faster on {pick.faster_on}, slower "
            f"on {pick.slower_on}; one-sided Wilcoxon signed-rank p = {pick.p_value:.4f} <= "
            f"{pick.holm_level:.4f} (Holm, alpha {ALPHA})"
        )
    else:
        pick = base
        reason = (
            f"no candidate beat the base config on {plural(n_seeds, 'fresh seed')} "
            f"(paired one-sided Wilcoxon "
            f"signed-rank, Holm-corrected alpha {ALPHA}): best.yaml is the base config"
        )
    ranked_rows = [r for r in trials if r.sweep_rank is not None]
    return Selection(
        seeds=list(seeds),
        rows=rows,
        pick=pick.label,
        reason=reason,
        estimate_median=harrell_davis_median([o.censored_steps for o in pick.outcomes]),
        estimate_ci95=bootstrap_harrell_davis_ci([o.censored_steps for o in pick.outcomes], rng),
        estimate_solved=pick.solved,
        estimate_stays_solved=pick.stays_solved,
        kendall_tau=kendall_tau(
            [r.sweep_rank or 0 for r in ranked_rows], fresh_ranks([r.outcomes for r in ranked_rows])
        ),
        estimate_seeds=list(seeds),
        estimate_budget=base.outcomes[0].budget if base.outcomes else 0,
    )


def fresh_ranks(outcomes: Sequence[Sequence[SeedOutcome]]) -> list[int]:
    """Ranks on the fresh seeds: more seeds solved, then lower median, then lower mean steps (ties share)."""
    keys = [
        (
            -sum(o.solved for o in runs),
            censored_median([o.solve_or_none for o in runs]),
            statistics.mean(o.censored_steps for o in runs),
        )
        for runs in outcomes
    ]
    return [1 + sum(other < key for other in keys) for key in keys]


def kendall_tau(a: list[int], b: list[int]) -> float:
    """Kendall's tau between two rankings of the same items (1: same order, -1: reversed)."""
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    if not pairs:
        return math.nan
    score = sum((a[i] - a[j]) * (b[i] - b[j]) > 0 for i, j in pairs) - sum(
        (a[i] - a[j]) * (b[i] - b[j]) < 0 for i, j in pairs
    )
    return score / len(pairs)


def seed_ranges(seeds: Sequence[int]) -> str:
    """``900000..900019 and 950000..950019``: runs of consecutive seeds."""
    ranges: list[list[int]] = []
    for seed in sorted(seeds):
        if ranges and seed == ranges[-1][1] + 1:
            ranges[-1][1] = seed
        else:
            ranges.append([seed, seed])
    return " and ".join(f"{a}..{b}" if a != b else str(a) for a, b in ranges)


def censored_text(steps: float, budget: int) -> str:
    """A median or bound of censored steps to solve: at the budget (within half a step, so a weighted
    sum of budgets that lands at 49,999.99999 is still the budget) or above it means "not solved"."""
    return "unsolved" if steps >= budget - 0.5 else f"{steps:,.0f}"


def steps_text(steps: float | None) -> str:
    if steps is None or math.isnan(steps):
        return "-"
    return "never" if math.isinf(steps) else f"{steps:,.0f}"


def selection_table(selection: Selection, threshold: float) -> str:
    seeds = selection.seeds
    lines = [
        f"selection on {plural(len(seeds), 'fresh seed')} {seeds[0]}..{seeds[-1]} "
        f"(never used by the sweep; threshold "
        f'{threshold:g}; median: the sample median of steps to solve on these seeds, "unsolved" when '
        f"half or more are; paired: base − candidate per seed, unsolved = the budget)",
        "",
        "| candidate | sweep rank | sweep value | sweep estimate (tuning seeds) "
        "| median steps, selection seeds [95% CI] | solved | stays solved | paired median vs base [95% CI] "
        "| faster / slower | Wilcoxon p (Holm level) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    runs = len(seeds)
    for row in selection.rows:
        low, high = row.median_ci95
        paired = (
            "-"
            if row.paired_median is None or row.paired_ci95 is None
            else f"{row.paired_median:+,.0f} [{row.paired_ci95[0]:+,.0f}, {row.paired_ci95[1]:+,.0f}]"
        )
        test = "-" if row.p_value is None else f"{row.p_value:.4f} ({row.holm_level:.4f})"
        verdict = "**pick**" if row.label == selection.pick else ""
        verdict = "; ".join(v for v in (verdict, row.note) if v) or "-"
        value = "-" if row.sweep_value is None else f"{row.sweep_value:.4f}"
        tally = "- / -" if row.p_value is None else f"{row.faster_on} / {row.slower_on}"
        budget = row.outcomes[0].budget if row.outcomes else 0
        fresh = (
            f"{censored_text(row.median_steps, budget)} [{censored_text(low, budget)}, "
            f"{censored_text(high, budget)}]"
        )
        lines.append(
            f"| {row.label} | {row.sweep_rank or '-'} | {value} | {steps_text(row.sweep_estimate)} | "
            f"{fresh} | {row.solved}/{runs} | "
            f"{row.stays_solved}/{runs} | {paired} | {tally} | {test} | {verdict} |"
        )
    tau = selection.kendall_tau
    lines += [
        "",
        f"pick: {selection.reason}",
        f"estimate for the pick: {selection.estimate_text()}; measured on seeds that took no part in the "
        "decision, so it can differ from the pick's median in the table, which is on the seeds that chose it",
        f"rank agreement of the sweep's top trials (Kendall's tau, sweep vs fresh seeds): "
        f"{'-' if math.isnan(tau) else f'{tau:+.2f}'}",
    ]
    return "\n".join(lines)


def cached_key(config: RunConfig, seed: int) -> str:
    return f"selection:{config_digest(config)}:{seed}"


def run_selection(
    study: optuna.Study,
    cands: Sequence[Candidate],
    seeds: list[int],
    runs_root: Path,
    log_root: Path,
    jobs: int,
    on_result: Callable[[str, SeedOutcome, int, int], None] | None = None,
    curves: bool = False,
) -> dict[str, list[SeedOutcome]]:
    """Every candidate's outcome on every seed: from the study's record, else trained now (and recorded;
    with ``curves``, with TensorBoard curves under ``log_root``)."""
    from cartpole_dqn.run.multiseed import RunSpec, run_many

    recorded = study.user_attrs
    outcomes: dict[str, list[SeedOutcome]] = {cand.label: [] for cand in cands}
    specs: list[RunSpec] = []
    for cand in cands:
        for seed in seeds:
            known = recorded.get(cached_key(cand.config, seed))
            if known is not None:
                outcomes[cand.label].append(SeedOutcome(**known))
            else:
                specs.append(RunSpec(cand.label, cand.config.replace(seed=seed), runs_root, log_root, curves))

    def record(spec: RunSpec, result: RunResult, done: int, total: int) -> None:
        outcome = SeedOutcome.of(result)
        study.set_user_attr(cached_key(spec.config, spec.config.seed), asdict(outcome))
        outcomes[spec.label].append(outcome)
        if on_result is not None:
            on_result(spec.label, outcome, done, total)

    if specs:
        run_many(specs, jobs=min(jobs, len(specs)), on_result=record)
    return outcomes
