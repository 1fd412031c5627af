"""What a sweep leaves behind: a table of the top trials, ``best.yaml`` and PNG plots."""

from __future__ import annotations

import json
import math
import os
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
from cartpole_dqn.tuning.objective import median_steps
from cartpole_dqn.tuning.space import overrides_from_params

if TYPE_CHECKING:
    from cartpole_dqn.tuning.sweep import SweepSettings


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts = {state.name.lower(): 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] += 1
    return counts


def best_config(study: optuna.Study, base: RunConfig) -> RunConfig:
    """The base config with the best trial's parameters (seed and threshold left as in the base)."""
    return base.replace(**overrides_from_params(study.best_trial.params))


def seed_results(trial: FrozenTrial) -> list[dict[str, Any]]:
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


def sweep_estimate(trial: FrozenTrial) -> float:
    """The trial's steps to solve as the sweep saw it: the upper median over its seeds (unsolved: inf)."""
    return median_steps([r["steps_to_solve"] if r["solved"] else None for r in seed_results(trial)])


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return sorted(done, key=lambda t: (-(t.value or 0.0), t.number))


def steps_text(steps: float) -> str:
    return "never" if math.isinf(steps) else f"{steps:,.0f}"


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
    """Optimization history, parameter importances and slice plots as PNG (those the study supports)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, plot in (
        ("optimization_history", ovm.plot_optimization_history),
        ("param_importances", ovm.plot_param_importances),
        ("slice", ovm.plot_slice),
    ):
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


def write_summary(study: optuna.Study, folder: Path, base: RunConfig) -> dict[str, Any]:
    """best.yaml and summary.json in ``folder``; returns the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    best = best_config(study, base)
    write_atomic(
        folder / "best.yaml",
        f"# best trial {study.best_trial.number} of study {study.study_name}\n" + best.to_yaml(),
    )
    summary = {
        "study": study.study_name,
        "counts": state_counts(study),
        "best_trial": study.best_trial.number,
        "best_value": study.best_value,
        "best_params": study.best_trial.params,
        "best_attrs": {k: v for k, v in study.best_trial.user_attrs.items() if not k.startswith("worker_")},
    }
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def recorded_base_config(study: optuna.Study, fallback: RunConfig) -> RunConfig:
    """The base config the study's trials ran with (recorded when it was created), else ``fallback``
    (studies made before that was recorded)."""
    recorded = study.user_attrs.get("base_config")
    if recorded is None:
        return fallback
    return RunConfig.from_mapping(recorded, source=f"study {study.study_name}")


def report(settings: SweepSettings, validate_seeds: int) -> None:
    """Print the top trials; write best.yaml, summary.json and plots; optionally validate the best."""
    from cartpole_dqn.run.envs import check_env
    from cartpole_dqn.tuning.studies import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(settings.store)
    try:
        study = optuna.load_study(study_name=settings.study_name, storage=storage)
    except KeyError:
        raise UsageError(
            f"no study named '{settings.study_name}' in {settings.store.description}", about="study_name"
        ) from None
    base = recorded_base_config(study, settings.base)
    env_info = check_env(base)
    counts = state_counts(study)
    print(
        f"study {study.study_name} ({settings.store.description}): "
        f"{counts['complete'] + counts['pruned']} finished ({counts['complete']} complete, "
        f"{counts['pruned']} pruned), {counts['fail']} failed, {counts['running']} running, "
        f"{counts['waiting']} waiting"
    )
    if counts["complete"] == 0:
        print("no completed trial yet: nothing to rank")
        return
    print(top_table(study, env_info.threshold, env_info.max_return))
    summary = write_summary(study, settings.study_dir, base)
    plots = write_plots(study, settings.study_dir / "plots")
    print(
        f"best trial {summary['best_trial']} (value {summary['best_value']:.4f}): "
        f"{settings.study_dir / 'best.yaml'}"
    )
    for plot in plots:
        print(f"plot: {plot}")
    if validate_seeds > 0:
        validate(settings, validate_seeds, env_info.threshold)


VALIDATED = 3  # --validate-seeds re-trains the sweep's top configs, this many


def validate(settings: SweepSettings, count: int, threshold: float) -> dict[str, Any]:
    """Re-train the top configs on ``count`` seeds no trial used; compare with the sweep's estimates.

    Prints, per config, the sweep's estimate (upper median steps over its tuning seeds) beside its
    validation median steps and solve rate, then the rank agreement (Kendall's tau of the sweep's
    order against the validation order) and the two reproducibility figures: the best config's
    validation median relative to its sweep estimate, and the sweep best's rank on validation.
    Writes validation.json and validation.md into the study folder.
    """
    from cartpole_dqn.benchmarking.progress import clock
    from cartpole_dqn.benchmarking.stats import solved_within
    from cartpole_dqn.run.multiseed import RunSpec, run_many
    from cartpole_dqn.tuning.seeds import validation_seeds

    storage_study = _load(settings)
    base = recorded_base_config(storage_study, settings.base)
    top = ranked(storage_study)[:VALIDATED]
    seeds = validation_seeds(count)
    specs = [
        RunSpec(
            f"trial-{trial.number}",
            base.replace(**overrides_from_params(trial.params), seed=seed),
            settings.study_dir / "validation",
            settings.log_dir / "tune" / settings.study_name / "validation",
        )
        for trial in top
        for seed in seeds
    ]
    start = time.time()

    def progress(spec: RunSpec, result: Any, done: int, total: int) -> None:
        if settings.progress:
            what = f"solved at {result.steps_to_solve:,}" if solved_within(result) else "not solved"
            elapsed = time.time() - start
            print(
                f"validate {done}/{total} {spec.label} seed {result.seed}: {what}  elapsed {clock(elapsed)}"
                f"  ETA {clock(elapsed / done * (total - done))}",
                file=sys.stderr,
                flush=True,
            )

    results = run_many(specs, jobs=min(os.cpu_count() or 1, len(specs)), on_result=progress)
    rows = []
    for i, trial in enumerate(top):
        runs = results[i * count : (i + 1) * count]
        solved = [r for r in runs if solved_within(r)]
        rows.append(
            {
                "sweep_rank": i + 1,
                "trial": trial.number,
                "value": trial.value,
                "params": trial.params,
                "sweep_seeds": len(seed_results(trial)),
                "sweep_solved": sum(r["solved"] for r in seed_results(trial)),
                "sweep_median_steps": sweep_estimate(trial),
                "validation_median_steps": median_steps(
                    [r.steps_to_solve if solved_within(r) else None for r in runs]
                ),
                "validation_solved": len(solved),
                "validation_stays_solved": sum(r.stays_solved for r in solved),
                "validation_runs": len(runs),
            }
        )
    # Validation order: more seeds solved, then lower median steps, then lower mean steps (unsolved
    # counted as the budget); configs equal on all three share a rank (never broken by the sweep's order).
    for row, runs in zip(rows, (results[i * count : (i + 1) * count] for i in range(len(top))), strict=True):
        row["validation_mean_steps"] = statistics.mean(
            r.steps_to_solve if solved_within(r) and r.steps_to_solve is not None else r.budget for r in runs
        )
    keys = [(-r["validation_solved"], r["validation_median_steps"], r["validation_mean_steps"]) for r in rows]
    for row, key in zip(rows, keys, strict=True):
        row["validation_rank"] = 1 + sum(other < key for other in keys)
    best = rows[0]
    ratio = (
        best["validation_median_steps"] / best["sweep_median_steps"]
        if math.isfinite(best["sweep_median_steps"]) and math.isfinite(best["validation_median_steps"])
        else math.nan
    )
    record = {
        "study": settings.study_name,
        "validation_seeds": seeds,
        "configs": rows,
        "kendall_tau": kendall_tau([r["sweep_rank"] for r in rows], [r["validation_rank"] for r in rows]),
        "best_validation_over_sweep": ratio,
        "best_validation_rank": best["validation_rank"],
    }
    table = validation_table(record, threshold)
    print(table)
    write_atomic(settings.study_dir / "validation.json", json.dumps(record, indent=2, default=str) + "\n")
    write_atomic(settings.study_dir / "validation.md", table + "\n")
    return record


def kendall_tau(a: list[int], b: list[int]) -> float:
    """Kendall's tau between two rankings of the same items (1: same order, -1: reversed)."""
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    if not pairs:
        return math.nan
    score = sum((a[i] - a[j]) * (b[i] - b[j]) > 0 for i, j in pairs) - sum(
        (a[i] - a[j]) * (b[i] - b[j]) < 0 for i, j in pairs
    )
    return score / len(pairs)


def validation_table(record: dict[str, Any], threshold: float) -> str:
    seeds = record["validation_seeds"]
    lines = [
        f"validation on seeds {seeds[0]}..{seeds[-1]} (never used by the sweep; threshold {threshold:g}; "
        "medians are upper medians, an unsolved seed counting as never)",
        "",
        "| sweep rank | trial | sweep value | sweep estimate: median steps (seeds solved) "
        "| validation median steps | validation solved | stays solved | validation rank |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in record["configs"]:
        lines.append(
            f"| {row['sweep_rank']} | {row['trial']} | {row['value']:.4f} | "
            f"{steps_text(row['sweep_median_steps'])} ({row['sweep_solved']}/{row['sweep_seeds']}) | "
            f"{steps_text(row['validation_median_steps'])} | "
            f"{row['validation_solved']}/{row['validation_runs']} | "
            f"{row['validation_stays_solved']}/{row['validation_runs']} | {row['validation_rank']} |"
        )
    ratio = record["best_validation_over_sweep"]
    ratio_text = "-" if math.isnan(ratio) else f"{100 * (ratio - 1):+.0f}%"
    tau = record["kendall_tau"]
    lines += [
        "",
        f"rank agreement (Kendall's tau, sweep vs validation): {'-' if math.isnan(tau) else f'{tau:+.2f}'}; "
        f"the sweep's best is #{record['best_validation_rank']} on validation; its validation median is "
        f"{ratio_text} against its sweep estimate",
    ]
    return "\n".join(lines)


def _load(settings: SweepSettings) -> optuna.Study:
    from cartpole_dqn.tuning.studies import open_storage

    return optuna.load_study(study_name=settings.study_name, storage=open_storage(settings.store))
