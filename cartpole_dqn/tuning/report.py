"""What a sweep leaves behind: a table of the top trials, the pick (``best.yaml``) and PNG plots.

``best.yaml`` is the pick of :mod:`cartpole_dqn.tuning.selection` (the sweep's top configs and the
base config re-trained on fresh seeds, compared paired with the base) and its header states the
fresh-seed estimate. With ``--validate-seeds 0`` it is the sweep's best trial, and the report says
that its estimate is the sweep's own, optimistic by selection.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from cartpole_dqn.config import RunConfig
from cartpole_dqn.errors import UsageError
from cartpole_dqn.run.artifacts import write_atomic
from cartpole_dqn.run.verdict import plural
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


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts = {state.name.lower(): 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] += 1
    return counts


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return sorted(done, key=lambda t: (-(t.value or 0.0), t.number))


def top_table(study: optuna.Study, threshold: float, max_return: float | None, top: int = 10) -> str:
    head = (
        "| trial | value | seeds solved | median steps to solve | steps per seed | final eval (median) "
        "| vs threshold {t:g} | vs max {m} | params |"
    )
    lines = [
        head.format(t=threshold, m="-" if max_return is None else f"{max_return:g}"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for trial in ranked(study)[:top]:
        lines.append(_row(trial, threshold, max_return))
    return "\n".join(lines)


def _row(trial: FrozenTrial, threshold: float, max_return: float | None) -> str:
    attrs = trial.user_attrs
    seeds = seed_results(trial)
    means = attrs.get("eval_means") or ([attrs["eval_mean"]] if "eval_mean" in attrs else [])
    mean = statistics.median(means) if means else None
    verdict = (
        "-" if mean is None else ("PASS" if mean >= threshold else "FAIL") + f" ({mean - threshold:+.1f})"
    )
    of_max = "-" if mean is None or max_return is None else f"{100 * mean / max_return:.0f}%"
    per_seed = " ".join("-" if not r["solved"] else f"{r['steps_to_solve']:,}" for r in seeds)
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
    return (
        f"| {trial.number} | {trial.value:.4f} | {sum(r['solved'] for r in seeds)}/{len(seeds)} | "
        f"{steps_text(sweep_estimate(trial))} | {per_seed} | {'-' if mean is None else f'{mean:.1f}'} | "
        f"{verdict} | {of_max} | {params} |"
    )


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimization history, parameter importances and slice plots as PNG (those the study supports;
    importances only from two completed trials on, where they mean something)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    for name, plot in (
        ("optimization_history", ovm.plot_optimization_history),
        ("param_importances", ovm.plot_param_importances),
        ("slice", ovm.plot_slice),
    ):
        if name == "param_importances" and complete < 2:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importances need two or more completed trials with varying params
        figure: Any = axes.flat[0].figure if hasattr(axes, "flat") else axes.figure
        figure.set_size_inches(max(figure.get_size_inches()[0], 8), max(figure.get_size_inches()[1], 5))
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def recorded_base_config(study: optuna.Study, fallback: RunConfig) -> RunConfig:
    """The base config the study's trials ran with (recorded when it was created), else ``fallback``
    (studies made before that was recorded)."""
    recorded = study.user_attrs.get("base_config")
    if recorded is None:
        return fallback
    return RunConfig.from_mapping(recorded, source=f"study {study.study_name}")


DEFAULT_VALIDATE_SEEDS = 20


def load_recorded_study(settings: SweepSettings) -> optuna.Study:
    """The study named in ``settings`` (one line, exit 2, when there is none)."""
    from cartpole_dqn.tuning.studies import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(settings.store)
    try:
        return optuna.load_study(study_name=settings.study_name, storage=storage)
    except KeyError:
        raise UsageError(
            f"no study named '{settings.study_name}' in {settings.store.description}", about="study_name"
        ) from None


def recorded_validate_seeds(study: optuna.Study) -> int | None:
    """The ``--validate-seeds`` of the study's recorded pick (None: no pick recorded yet)."""
    record = study.user_attrs.get("pick")
    if record is None:
        return None
    if "validate_seeds" in record:
        return int(record["validate_seeds"])
    return len(record.get("seeds", [])) if record.get("estimate") == "fresh seeds" else 0


def _print_study(study: optuna.Study, settings: SweepSettings) -> dict[str, int]:
    counts = state_counts(study)
    print(
        f"study {study.study_name} ({settings.store.description}): "
        f"{counts['complete'] + counts['pruned']} finished ({counts['complete']} complete, "
        f"{counts['pruned']} pruned), {counts['fail']} failed, {counts['running']} running, "
        f"{counts['waiting']} waiting"
    )
    return counts


def report(settings: SweepSettings, validate_seeds: int | None = None) -> None:
    """``tune --report``: print the study's counts, its top trials and its recorded pick. Read-only: it
    trains nothing and writes nothing (``--select`` re-runs the selection)."""
    from cartpole_dqn.run.envs import check_env

    study = load_recorded_study(settings)
    env_info = check_env(recorded_base_config(study, settings.base))
    counts = _print_study(study, settings)
    if counts["complete"] == 0:
        print("no completed trial yet: nothing to rank")
        return
    print(top_table(study, env_info.threshold, env_info.max_return))
    record = study.user_attrs.get("pick")
    if record is None:
        print(
            "no pick recorded yet: the sweep's selection has not finished; `--select` runs it "
            "(it re-trains the top configs on fresh seeds)"
        )
        return
    recorded = study.user_attrs.get("selection")
    if recorded is not None and record.get("estimate") == "fresh seeds":
        print(selection_table(Selection.from_dict(recorded), env_info.threshold))
    else:
        print(
            f"pick: {record['pick']} ({record.get('estimate', '-')}); {record.get('reason', '')}".rstrip("; ")
        )
    seeds = recorded_validate_seeds(study)
    if validate_seeds is not None and validate_seeds != seeds:
        print(
            f"note: the recorded pick was made with --validate-seeds {seeds}; this report shows it as "
            f"recorded (`--select --validate-seeds {validate_seeds}` re-runs the selection)"
        )
    best = settings.study_dir / "best.yaml"
    print(f"best.yaml: {best}" + ("" if best.is_file() else " (not on this machine)"))


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
    from cartpole_dqn.run.envs import check_env

    study = load_recorded_study(settings)
    base = recorded_base_config(study, settings.base)
    env_info = check_env(base)
    counts = _print_study(study, settings)
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
