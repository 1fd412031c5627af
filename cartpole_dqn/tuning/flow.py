"""The tuner's three modes, below the command line: the sweep then the pick (or "nothing to do" on
a finished study), a re-run of the pick (``--select``), and the read-only report (``--report``)."""

from __future__ import annotations

from dataclasses import replace

from cartpole_dqn.run.verdict import plural
from cartpole_dqn.tuning.pick import select_and_write
from cartpole_dqn.tuning.report import load_recorded_study, recorded_validate_seeds
from cartpole_dqn.tuning.sweep import SweepSettings

DEFAULT_VALIDATE_SEEDS = 20  # fresh seeds per candidate when neither the user nor the study says


def sweep_then_pick(
    settings: SweepSettings, workers: int, prog: str, validate_seeds: int | None, selection_curves: bool
) -> None:
    """Run the trials still missing, then pick on fresh seeds; a finished study with a recorded pick
    prints that there is nothing to do."""
    from cartpole_dqn.tuning.studies import ClaimLock, count, open_storage, open_study
    from cartpole_dqn.tuning.sweep import record_settings, run_sweep

    # refused here: a study of the same name with another direction, base config, space or K
    study = open_study(open_storage(settings.store), settings.study_name)
    with ClaimLock(settings.store, settings.study_name).holding():  # one machine records the settings
        record_settings(study, settings)
    finished = count(study)[0]
    recorded_seeds = recorded_validate_seeds(study)
    if finished >= settings.trials and recorded_seeds is not None:
        print(
            f"nothing to do: study {settings.study_name} has {plural(finished, 'finished trial')} "
            f"(--trials {settings.trials}) and a recorded pick ({study.user_attrs['pick']['pick']}, "
            f"--validate-seeds {recorded_seeds}); best.yaml: {settings.study_dir / 'best.yaml'}. "
            "`--report` shows it, `--select` re-runs the pick, a larger --trials extends the sweep"
        )
        return
    wall = run_sweep(replace(settings, finished_at_start=finished), workers, prog)
    print(f"sweep wall time: {wall:.1f} s with {workers} worker(s)")
    if validate_seeds is None:
        validate_seeds = DEFAULT_VALIDATE_SEEDS if recorded_seeds is None else recorded_seeds
    select_and_write(
        settings,
        validate_seeds,
        workers,
        write_plots_now=count(study)[0] > finished,
        selection_curves=selection_curves,
    )


def pick_again(
    settings: SweepSettings, workers: int, validate_seeds: int | None, selection_curves: bool
) -> None:
    """``--select``: the pick on a finished study, with the study's recorded N unless given another."""
    if validate_seeds is None:
        recorded = recorded_validate_seeds(load_recorded_study(settings))
        validate_seeds = DEFAULT_VALIDATE_SEEDS if recorded is None else recorded
    select_and_write(
        settings, validate_seeds, workers, write_plots_now=False, selection_curves=selection_curves
    )
