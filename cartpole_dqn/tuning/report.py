"""What a sweep leaves behind: a table of the top trials, ``best.yaml`` and PNG plots."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from cartpole_dqn.config import RunConfig
from cartpole_dqn.errors import UsageError
from cartpole_dqn.run.artifacts import write_atomic
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


def top_table(study: optuna.Study, threshold: float, max_return: float | None, top: int = 10) -> str:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    done.sort(key=lambda t: t.value or 0.0, reverse=True)
    head = (
        "| trial | value | solved | steps to solve | eval mean | vs threshold {t:g} | vs max {m} | params |"
    )
    lines = [
        head.format(t=threshold, m="-" if max_return is None else f"{max_return:g}"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for trial in done[:top]:
        lines.append(_row(trial, threshold, max_return))
    return "\n".join(lines)


def _row(trial: FrozenTrial, threshold: float, max_return: float | None) -> str:
    attrs = trial.user_attrs
    mean = attrs.get("eval_mean")
    steps = attrs.get("steps_to_solve")
    verdict = (
        "-" if mean is None else ("PASS" if mean >= threshold else "FAIL") + f" ({mean - threshold:+.1f})"
    )
    of_max = "-" if mean is None or max_return is None else f"{100 * mean / max_return:.0f}%"
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
    return (
        f"| {trial.number} | {trial.value:.4f} | {'yes' if attrs.get('solved') else 'no'} | "
        f"{'-' if steps is None else f'{steps:,}'} | {'-' if mean is None else f'{mean:.1f}'} | "
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


def validate(settings: SweepSettings, count: int, threshold: float) -> None:
    """Re-train best.yaml on ``count`` seeds no trial used, and print how it does."""
    from cartpole_dqn.benchmarking.stats import summarize
    from cartpole_dqn.config import load_config
    from cartpole_dqn.run.multiseed import RunSpec, run_many
    from cartpole_dqn.tuning.sweep import validation_seeds

    best = load_config(settings.study_dir / "best.yaml")
    seeds = validation_seeds(count)
    specs = [
        RunSpec(
            "validate",
            best.replace(seed=seed),
            settings.study_dir / "validation",
            settings.log_dir / "tune" / settings.study_name / "validation",
        )
        for seed in seeds
    ]
    s = summarize(run_many(specs, jobs=min(os.cpu_count() or 1, count)))
    steps = "-" if s.steps_median is None else f"{s.steps_median:,.0f}"
    print(
        f"validation on seeds {seeds[0]}..{seeds[-1]} (never used by the sweep): "
        f"solved {s.solved}/{s.runs}, median steps to solve {steps}, "
        f"stays solved {s.stays_solved}/{s.runs} (threshold {threshold:g})"
    )
