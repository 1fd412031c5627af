"""The pick: after a sweep (or on ``tune --select``), the base config and the sweep's top trials
re-trained on fresh seeds (:mod:`cartpole_dqn.tuning.selection`), then ``best.yaml``,
``summary.json`` and the selection table written; a previous ``best.yaml`` that differs is kept.
With ``--validate-seeds 0`` the pick is the sweep's best trial, and its estimate is said to be the
sweep's own, optimistic by selection.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from cartpole_dqn.config import RunConfig
from cartpole_dqn.errors import UsageError
from cartpole_dqn.run.artifacts import write_atomic
from cartpole_dqn.run.verdict import plural
from cartpole_dqn.tuning.report import (
    load_recorded_study,
    print_study,
    ranked,
    recorded_base_config,
    top_table,
    write_plots,
)
from cartpole_dqn.tuning.selection import (
    BASE,
    SeedOutcome,
    Selection,
    cached_key,
    candidates,
    decide,
    run_selection,
    seed_results,
    selection_table,
    steps_text,
    sweep_estimate,
)
from cartpole_dqn.tuning.space import overrides_from_params

if TYPE_CHECKING:
    from cartpole_dqn.tuning.sweep import SweepSettings


def select_and_write(
    settings: SweepSettings,
    validate_seeds: int,
    jobs: int = 1,
    *,
    write_plots_now: bool = True,
    selection_curves: bool = False,
) -> None:
    """Print the top trials; pick (re-training on fresh seeds as needed, said before it starts); write
    best.yaml (a different previous one is kept beside it), summary.json and, when asked, the plots."""
    from cartpole_dqn.run.envs import env_info_of

    study = load_recorded_study(settings)
    base = recorded_base_config(study, settings.base)
    env_info = env_info_of(base)
    counts = print_study(study, settings)
    if counts["complete"] == 0:
        print("no completed trial yet: nothing to rank")
        return
    print(top_table(study, env_info.threshold, env_info.max_return))
    plots_dir = settings.study_dir / "plots"
    if write_plots_now or not plots_dir.is_dir():
        written = write_plots(study, plots_dir)
        for plot in written:
            print(f"plot: {plot}")
        if plots_dir / "param_importances.png" not in written:
            print(
                "plot: param_importances skipped (it needs two or more completed trials with varying params)"
            )
    best_trial = study.best_trial
    if validate_seeds > 0:
        selection = select(study, settings, base, validate_seeds, jobs, env_info.threshold, selection_curves)
        pick = selection.picked
        config = base  # the base as recorded, not the trial that enqueued it (trial params round floats)
        if pick.label != BASE and pick.trial is not None:
            config = base.replace(**overrides_from_params(study.trials[pick.trial].params))
        header = [
            f"picked by python -m cartpole_dqn.tune from study {study.study_name}: "
            + ("the base config" if pick.label == BASE else f"trial {pick.trial}"),
            selection.reason,
            f"estimate: {selection.estimate_text()}",
        ]
        record: dict[str, Any] = {
            "pick": selection.pick,
            "pick_trial": pick.trial,
            "validate_seeds": validate_seeds,
            "estimate": "fresh seeds",
            "estimate_median_steps": None if selection.estimate_unsolved else selection.estimate_median,
            "estimate_ci95": list(selection.estimate_ci95),
            "estimate_solved": selection.estimate_solved,
            "estimate_stays_solved": selection.estimate_stays_solved,
            "seeds": selection.seeds,
            "estimate_seeds": selection.estimate_seeds,
            "reason": selection.reason,
        }
    else:
        config = base.replace(**overrides_from_params(best_trial.params))
        estimate = sweep_estimate(best_trial)
        its_seeds = seed_results(best_trial)
        solved = sum(r["solved"] for r in its_seeds)
        optimistic = (
            f"estimate: median {steps_text(estimate)} steps to solve on the sweep's {len(its_seeds)} "
            f"tuning {plural(len(its_seeds), 'seed', bare=True)} ({solved} solved): optimistic, the best "
            f"of {counts['complete']} configs on the seeds that ranked them; --validate-seeds N re-trains "
            "the top configs on fresh seeds"
        )
        header = [
            f"best trial {best_trial.number} of study {study.study_name} by its sweep value "
            f"(--validate-seeds 0: not checked on fresh seeds)",
            optimistic,
        ]
        print(optimistic)
        record = {
            "pick": f"trial-{best_trial.number}",
            "pick_trial": best_trial.number,
            "validate_seeds": 0,
            "estimate": "sweep (optimistic)",
            "estimate_median_steps": estimate,
            "seeds": [r["seed"] for r in seed_results(best_trial)],
        }
    study.set_user_attr("pick", record)
    best = settings.study_dir / "best.yaml"
    text = "".join(f"# {line}\n" for line in header) + config.to_yaml()
    kept = keep_previous(best, text)
    write_atomic(best, text)
    summary = {
        "study": study.study_name,
        "counts": counts,
        "best_trial": best_trial.number,
        "best_value": best_trial.value,
        "best_params": best_trial.params,
        "best_attrs": {k: v for k, v in best_trial.user_attrs.items() if not k.startswith("worker_")},
        **record,
    }
    write_atomic(settings.study_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    print(f"best.yaml ({header[0]}): {best}")
    if kept is not None:
        print(f"the previous best.yaml, which differs, is kept as {kept}")


def keep_previous(path: Path, text: str) -> Path | None:
    """Rename an existing ``path`` whose text differs from ``text`` to ``<stem>-<its mtime>.yaml``
    (never over another file), so a new pick never silently replaces an old one."""
    try:
        old = path.read_text()
    except FileNotFoundError:
        return None
    if old == text:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    for suffix in ["", *(f"-{i}" for i in range(2, 1000))]:
        target = path.with_name(f"{path.stem}-{stamp}{suffix}{path.suffix}")
        if not target.exists():
            path.rename(target)
            return target
    raise UsageError(f"cannot keep the previous {path}: too many copies beside it")  # pragma: no cover


def planned_wall(study: optuna.Study, recorded: list[SeedOutcome]) -> float | None:
    """About how long one selection run takes: the median training wall of the runs already recorded,
    else of the sweep's complete trials per seed (None when neither is known)."""
    walls = [o.train_wall_s for o in recorded if o.train_wall_s is not None]
    if not walls:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            seeds = len(seed_results(trial))
            if trial.duration is not None and seeds:
                walls.append(trial.duration.total_seconds() / seeds)
    return statistics.median(walls) if walls else None


def select(
    study: optuna.Study,
    settings: SweepSettings,
    base: RunConfig,
    count: int,
    jobs: int,
    threshold: float,
    curves: bool = False,
) -> Selection:
    """Re-train the base config and the top trials on ``count`` fresh seeds (saying first how many runs
    and about how long), decide, confirm the pick on ``count`` more seeds, print and record."""
    from cartpole_dqn.run.clock import clock, eta
    from cartpole_dqn.tuning.seeds import confirmation_seeds, validation_seeds

    cands = candidates(ranked(study), base)
    seeds = validation_seeds(count)
    confirm_seeds = confirmation_seeds(count)
    known = [
        SeedOutcome(**study.user_attrs[key])
        for cand in cands
        for seed in (*seeds, *confirm_seeds)
        if (key := cached_key(cand.config, seed)) in study.user_attrs
    ]
    recorded_selection = sum(cached_key(c.config, s) in study.user_attrs for c in cands for s in seeds)
    to_train = len(cands) * len(seeds) - recorded_selection
    per_run = planned_wall(study, known)
    total = to_train + count  # the pick's confirmation runs, at most
    about = (
        "time unknown"
        if per_run is None
        else f"about {clock(per_run * total / max(1, min(jobs, total)))} with {plural(jobs, 'worker')}"
    )
    log_root = settings.log_dir / "tune" / settings.study_name / "selection"
    print(
        f"selection: {len(cands)} configs x {plural(count, 'fresh seed')}: {plural(to_train, 'run')} to "
        f"train ({recorded_selection} recorded in the study), then up to {count} for the pick's estimate; "
        f"{about}; runs in {settings.study_dir / 'selection'}, "
        + (f"curves in {log_root}" if curves else "no TensorBoard curves (--selection-curves writes them)"),
        flush=True,
    )
    start = time.time()

    def progress(label: str, outcome: SeedOutcome, done: int, total: int) -> None:
        if settings.progress:
            what = f"solved at {outcome.steps_to_solve:,}" if outcome.solved else "not solved"
            if outcome.diverged:
                what = "diverged (unsolved)"
            elapsed = time.time() - start
            print(
                f"select {done}/{total} {label} seed {outcome.seed}: {what}  elapsed {clock(elapsed)}  "
                f"ETA {eta(elapsed, done, total - done)}",
                file=sys.stderr,
                flush=True,
            )

    outcomes = run_selection(
        study, cands, seeds, settings.study_dir / "selection", log_root, jobs, progress, curves
    )
    selection = decide(cands, outcomes, seeds)
    # The estimate: N more seeds for the pick, which took no part in the decision (see selection.py).
    (picked,) = [c for c in cands if c.label == selection.pick]
    confirm = run_selection(
        study,
        [picked],
        confirm_seeds,
        settings.study_dir / "selection",
        log_root,
        jobs,
        lambda label, outcome, done, total: progress(f"{label} (estimate)", outcome, done, total),
        curves,
    )
    selection = selection.confirmed(confirm[picked.label])
    table = selection_table(selection, threshold)
    print(table)
    study.set_user_attr("selection", selection.to_dict())
    write_atomic(settings.study_dir / "selection.json", json.dumps(selection.to_dict(), indent=2) + "\n")
    write_atomic(settings.study_dir / "selection.md", table + "\n")
    return selection
