"""What a study shows: its counts, a table of the top trials, its recorded pick and PNG plots.

``tune --report`` is :func:`report`: read-only, it trains and writes nothing. The pick itself
(re-training on fresh seeds, ``best.yaml``) is made in :mod:`cartpole_dqn.tuning.pick`.
"""

from __future__ import annotations

import statistics
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from cartpole_dqn.config import RunConfig
from cartpole_dqn.errors import UsageError
from cartpole_dqn.tuning.selection import (
    Selection,
    seed_results,
    selection_table,
    steps_text,
    sweep_estimate,
)

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


def print_study(study: optuna.Study, settings: SweepSettings) -> dict[str, int]:
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
    from cartpole_dqn.run.envs import env_info_of

    study = load_recorded_study(settings)
    env_info = env_info_of(recorded_base_config(study, settings.base))
    counts = print_study(study, settings)
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
