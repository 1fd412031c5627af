"""The tuner end to end through its CLI, on the embedded journal store, with real training trials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.tuning.seeds import tuning_seeds, validation_seeds
from cartpole_dqn.tuning.space import base_params, overrides_from_params
from cartpole_dqn.tuning.studies import StoreSettings, open_storage, open_study
from cartpole_dqn.tuning.sweep import SweepSettings, run_trial
from tests.conftest import (
    assert_one_line_error,
    never_stopping_base,
    run_in_process,
    run_module,
    sigkill_when,
    tree_digest,
)

pytestmark = pytest.mark.slow

TINY = ["--timesteps", "2000", "--workers", "1", "--validate-seeds", "0"]


def load(workdir: Path, name: str) -> optuna.Study:
    storage = open_storage(StoreSettings(None, workdir / "experiments" / "tuning" / "journal.log"))
    return optuna.load_study(study_name=name, storage=storage)


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))


def hparams_session(folder: Path) -> dict[str, Any]:
    """A trial's HParams session and metrics, read by TensorBoard's event reader and hparams plugin."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    hparams: dict[str, Any] = {}
    for name, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[name] = getattr(value, kind)
    metrics = {tag: accumulator.Scalars(tag)[-1].value for tag in accumulator.Tags()["scalars"]}
    return {"hparams": hparams, "metrics": metrics}


def config_text(folder: Path) -> str:
    """The config a run wrote into its TensorBoard run (the Text tab), as TensorBoard reads it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    (event,) = accumulator.Tensors("config/text_summary")
    return str(tensor_util.make_ndarray(event.tensor_proto).item().decode())


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_sweep_end_to_end_and_resume(workdir: Path) -> None:
    result = run_module("cartpole_dqn.tune", "--trials", "3", *TINY, "--study-name", "tiny", cwd=workdir)
    assert result.returncode == 0, result.stderr
    study = load(workdir, "tiny")
    assert finished(study) == 3
    assert not study.get_trials(states=(TrialState.RUNNING,))
    folder = workdir / "experiments" / "tuning" / "tiny"
    base = RunConfig(total_timesteps=2000)
    assert study.trials[0].params == base_params("core", base) and study.trials[0].user_attrs["base"]
    best = load_config(folder / "best.yaml")  # --validate-seeds 0: the sweep's best, said to be optimistic
    assert best == base.replace(**overrides_from_params(study.best_trial.params))
    assert "optimistic" in result.stdout and "optimistic" in (folder / "best.yaml").read_text()
    plots = sorted((folder / "plots").glob("*.png"))
    assert {p.name for p in plots} >= {"optimization_history.png", "slice.png"} and all(map(is_png, plots))
    for trial in study.trials:
        seeds = trial.user_attrs["seed_results"]
        assert [r["seed"] for r in seeds] == tuning_seeds(0, 3)[: len(seeds)]  # common to all trials
        assert len(seeds) == 3 or trial.state == TrialState.PRUNED
        logs = workdir / "tensorboard_logs" / "tune" / "tiny" / f"trial-{trial.number}"
        assert {p.name for p in logs.iterdir()} == {"hparams"} | {f"seed-{r['seed']}" for r in seeds}
        session = hparams_session(logs / "hparams")
        assert session["hparams"]["gamma"] == pytest.approx(trial.params["gamma"])
        assert session["hparams"]["state"] == trial.state.name.lower()
        assert session["metrics"]["trial/solved_seeds"] == sum(r["solved"] for r in seeds)
        if trial.state == TrialState.COMPLETE:
            assert session["metrics"]["trial/value"] == pytest.approx(trial.value)
        assert "total_timesteps: 2000" in config_text(logs / f"seed-{seeds[0]['seed']}")
    assert "vs threshold 475" in result.stdout and "3 finished" in result.stdout
    progress = [line for line in result.stderr.splitlines() if line.startswith("trial ")]
    assert [line.split()[1] for line in progress] == ["1/3", "2/3", "3/3"], result.stderr
    assert all("seeds solved" in line and "ETA" in line for line in progress)
    # The same command again: the study has its 3 finished trials and a recorded pick, nothing to do.
    again = run_module("cartpole_dqn.tune", "--trials", "3", *TINY, "--study-name", "tiny", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "nothing to do: study tiny has 3 finished trials" in again.stdout
    assert len(load(workdir, "tiny").trials) == 3
    # --trials is the total: asking for 4 runs exactly one more (quietly, with --no-progress).
    more = run_module(
        "cartpole_dqn.tune", "--trials", "4", *TINY, "--study-name", "tiny", "--no-progress", cwd=workdir
    )
    assert more.returncode == 0, more.stderr
    assert finished(load(workdir, "tiny")) == 4
    assert not any(line.startswith("trial ") for line in more.stderr.splitlines())

    sweep_pick = (folder / "best.yaml").read_text()
    kept_before = set(folder.glob("best-*.yaml"))
    report = run_module(
        "cartpole_dqn.tune", "--select", "--study-name", "tiny", "--validate-seeds", "1", cwd=workdir
    )
    assert report.returncode == 0 and "4 finished" in report.stdout, report.stderr
    # it says what it will train before it starts, and keeps the sweep's best.yaml, which differs
    plan = next(line for line in report.stdout.splitlines() if line.startswith("selection: "))
    assert "x 1 fresh seed:" in plan and "runs to train (0 recorded in the study)" in plan
    assert "about " in plan and "no TensorBoard curves" in plan
    (kept,) = set(folder.glob("best-*.yaml")) - kept_before
    assert kept.read_text() == sweep_pick and f"kept as {kept.relative_to(workdir)}" in report.stdout
    assert not (workdir / "tensorboard_logs" / "tune" / "tiny" / "selection").exists()
    assert "rank agreement of the sweep's top trials (Kendall's tau, sweep vs fresh seeds)" in report.stdout
    selection = json.loads((folder / "selection.json").read_text())
    assert selection["seeds"] == validation_seeds(1)
    study = load(workdir, "tiny")
    complete = sorted(
        study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: (-(t.value or 0), t.number)
    )
    labels = [row["label"] for row in selection["rows"]]
    assert labels[0] == "base" and len(labels) == len(set(labels)) <= 4
    expected = [f"trial-{t.number}" for t in complete if t.number != 0][: len(labels) - 1]
    assert labels[1:] == expected  # the base, then the sweep's top trials that differ from it
    runs = sorted((folder / "selection").iterdir())
    assert len(runs) == len(labels) + 1 and all(
        (r / "results.json").is_file() for r in runs
    )  # + the estimate
    assert study.user_attrs["pick"]["pick"] == selection["pick"]
    assert "select " in report.stderr  # progress lines while re-training
    # A second selection re-uses the recorded runs: nothing is trained again, the answer is the same.
    again = run_module("cartpole_dqn.tune", "--select", "--study-name", "tiny", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "select " not in again.stderr and len(list((folder / "selection").iterdir())) == len(runs)
    assert json.loads((folder / "selection.json").read_text()) == selection
    assert len(list(folder.glob("best-*.yaml"))) == len(kept_before) + 1  # the same pick: nothing kept
    # --report shows what is recorded: it trains nothing and writes nothing, whatever N it is given.
    before = tree_digest(workdir / "experiments")
    shown = run_module(
        "cartpole_dqn.tune", "--report", "--study-name", "tiny", "--validate-seeds", "5", cwd=workdir
    )
    assert shown.returncode == 0, shown.stderr
    assert tree_digest(workdir / "experiments") == before and "select " not in shown.stderr
    table = (folder / "selection.md").read_text().strip()
    assert table in shown.stdout  # the recorded selection table, the same figures
    assert "made with --validate-seeds 1" in shown.stdout


def test_best_yaml_runs_unchanged_with_train(workdir: Path) -> None:
    result = run_module("cartpole_dqn.tune", "--trials", "2", *TINY, "--study-name", "b", cwd=workdir)
    assert result.returncode == 0, result.stderr
    train = run_module(
        "cartpole_dqn.train",
        "--config",
        "experiments/tuning/b/best.yaml",
        "--no-progress",
        "--run-name",
        "best",
        cwd=workdir,
    )
    assert train.returncode == 0, train.stderr
    assert (workdir / "experiments" / "runs" / "best" / "results.json").is_file()


def test_two_workers_on_the_embedded_store_finish_exactly_n(workdir: Path) -> None:
    result = run_module(
        "cartpole_dqn.tune",
        "--trials",
        "5",
        "--timesteps",
        "1500",
        "--workers",
        "2",
        "--study-name",
        "two",
        "--validate-seeds",
        "0",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    study = load(workdir, "two")
    assert finished(study) == 5 and len(study.trials) == 5
    pids = {t.user_attrs["worker_pid"] for t in study.trials}
    assert len(pids) == 2, "both worker processes ran trials"


def test_sigkill_mid_trial_then_rerun_ends_with_exactly_n(workdir: Path) -> None:
    args = [
        "--trials",
        "2",
        "--config",
        str(never_stopping_base(workdir)),
        "--timesteps",
        "6000",  # two seeds of it: the trial runs for seconds after it is seen RUNNING
        "--workers",
        "1",
        "--study-name",
        "killed",
        "--pruner",
        "none",
        "--seeds-per-trial",
        "2",
        "--validate-seeds",
        "0",
    ]

    def a_running_trial() -> list[optuna.trial.FrozenTrial] | None:
        try:
            return load(workdir, "killed").get_trials(states=(TrialState.RUNNING,)) or None
        except (KeyError, OSError):
            return None

    running = sigkill_when("cartpole_dqn.tune", args, workdir, a_running_trial, settle=1.5)
    orphan = running[0].number
    assert load(workdir, "killed").trials[orphan].state == TrialState.RUNNING

    rerun = run_module("cartpole_dqn.tune", *args, cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    study = load(workdir, "killed")
    assert finished(study) == 2  # the killed trial's retry and one new trial
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert study.trials[orphan].state == TrialState.FAIL
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == orphan]
    assert len(retried) == 1 and retried[0].params == study.trials[orphan].params
    # The killed trial's seeds are all re-run by its retry, none carried over half-counted.
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        assert [r["seed"] for r in trial.user_attrs["seed_results"]] == tuning_seeds(0, 2)


def sweep_settings(tmp_path: Path, base: RunConfig, seeds_per_trial: int) -> SweepSettings:
    store = StoreSettings(None, tmp_path / "journal.log")
    return SweepSettings(
        base, "prune", 4, "core", "random", "median", 0, store, tmp_path, tmp_path / "tb", seeds_per_trial
    )


def fixed(settings: SweepSettings, study: optuna.Study, trials: int) -> None:
    """Run ``trials`` trials of the base config itself (its core params enqueued, nothing sampled)."""
    params = {
        name: getattr(settings.base, name)
        for name in (
            "gamma",
            "batch_size",
            "target_update_interval",
            "exploration_fraction",
            "exploration_final_eps",
        )
    }
    for _ in range(trials):
        study.enqueue_trial(params)
    study.optimize(lambda trial: run_trial(trial, settings), n_trials=trials)


def test_a_hopeless_config_is_pruned_on_its_first_seed(tmp_path: Path) -> None:
    """Against two trials that learn, a learning rate of 1e-7 is pruned during its first seed's run:
    its second seed never runs."""
    store = StoreSettings(None, tmp_path / "journal.log")
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1000)
    study = open_study(open_storage(store), "prune", optuna.samplers.RandomSampler(seed=0), pruner)
    base = RunConfig(total_timesteps=8000, eval_episodes=20, curve_episodes=5)
    fixed(sweep_settings(tmp_path, base, 2), study, 2)
    hopeless = sweep_settings(tmp_path, base.replace(learning_rate=1e-7), 2)
    fixed(hopeless, study, 2)
    for trial in study.trials[2:]:
        assert trial.state == TrialState.PRUNED
        assert [r["seed"] for r in trial.user_attrs["seed_results"]] == tuning_seeds(0, 1)
        assert trial.last_step is not None and trial.last_step < 8000  # within the first seed's run


class PrunesEverySolvedRun(optuna.pruners.BasePruner):
    """A pruner that would stop any run whose last reported value is a solve (>= 1)."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        values = trial.intermediate_values
        return bool(values) and values[max(values)] >= 1.0


def test_a_config_that_solves_all_its_seeds_is_never_pruned(tmp_path: Path) -> None:
    """A solved run is never offered to the pruner (even one that would prune it), and the
    across-seed rule leaves a trial alone while its mean can still reach 1, although the study holds
    a faster solver: a config that solves both of its seeds completes."""
    store = StoreSettings(None, tmp_path / "journal.log")
    study = open_study(
        open_storage(store), "prune", optuna.samplers.RandomSampler(seed=0), PrunesEverySolvedRun()
    )
    study.add_trial(optuna.trial.create_trial(value=1.99, params={}, distributions={}))
    fixed(
        sweep_settings(tmp_path, RunConfig(total_timesteps=30_000, eval_episodes=20, curve_episodes=5), 2),
        study,
        1,
    )
    trial = study.trials[-1]
    assert trial.state == TrialState.COMPLETE, trial.user_attrs
    results = trial.user_attrs["seed_results"]
    assert [r["seed"] for r in results] == tuning_seeds(0, 2) and all(r["solved"] for r in results)
    assert set(results[0]) == {"seed", "solved", "steps_to_solve", "wall_to_solve_s"}
    assert trial.value is not None and trial.value >= 1.0
    # the solved runs did report their solve, at their seed's offset, to the end of the budget
    assert (
        max(trial.intermediate_values) > 30_000
        and trial.intermediate_values[max(trial.intermediate_values)] >= 1
    )


def test_across_seeds_a_trial_that_can_no_longer_rank_as_a_solver_is_pruned(tmp_path: Path) -> None:
    """No in-run pruning here: after two unsolved seeds of three, a trial's mean cannot reach 1 even
    if its third seed solved at once, so it is pruned (the study has a solver); the third never runs."""
    store = StoreSettings(None, tmp_path / "journal.log")
    study = open_study(
        open_storage(store), "prune", optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner()
    )
    study.add_trial(optuna.trial.create_trial(value=1.5, params={}, distributions={}))
    base = RunConfig(total_timesteps=2000, eval_episodes=10, curve_episodes=5, learning_rate=1e-7)
    fixed(sweep_settings(tmp_path, base, 3), study, 1)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED
    assert [r["solved"] for r in trial.user_attrs["seed_results"]] == [False, False]


def test_a_diverging_per_trial_is_pruned_and_the_sweep_goes_on(workdir: Path) -> None:
    (workdir / "diverge.yaml").write_text(
        "prioritized_replay: true\nlearning_rate: 1.0e+30\nlearning_starts: 300\n"
    )
    result = run_module(
        "cartpole_dqn.tune",
        "--trials",
        "2",
        *TINY,
        "--config",
        "diverge.yaml",
        "--study-name",
        "nan",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    study = load(workdir, "nan")
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert all("diverged" in t.user_attrs["diverged"] for t in study.trials)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--trials", "0"], ["--trials must be >= 1"]),
        (["--storage", "notaurl"], ["argument --storage: malformed storage URL 'notaurl'"]),
        (
            ["--storage", "postgresql+psycopg2://u:secret@127.0.0.1:1/nodb"],
            ["argument --storage: cannot use storage", "127.0.0.1:1"],
        ),
        (["--sampler", "grid"], ["--sampler", "invalid choice: 'grid'"]),
        (["--pruner", "hyperband"], ["--pruner", "invalid choice: 'hyperband'"]),
        (["--report", "--study-name", "nope"], ["no study named 'nope'"]),
    ],
)
def test_tune_rejects_bad_input(workdir: Path, args: list[str], needles: list[str]) -> None:
    result = run_in_process("cartpole_dqn.tune", *args, cwd=workdir)
    assert_one_line_error(result, *needles)
    assert "secret" not in result.stderr


def test_study_with_another_direction_is_refused_and_untouched(workdir: Path) -> None:
    storage = open_storage(StoreSettings(None, workdir / "experiments" / "tuning" / "journal.log"))
    optuna.create_study(study_name="taken", storage=storage, direction="minimize")
    before = tree_digest(workdir / "experiments" / "tuning")
    result = run_module("cartpole_dqn.tune", "--trials", "2", *TINY, "--study-name", "taken", cwd=workdir)
    assert_one_line_error(result, "study 'taken' already exists with direction minimize")
    assert tree_digest(workdir / "experiments" / "tuning") == before


def test_optuna_dashboard_wsgi_app_lists_our_study(workdir: Path) -> None:
    import json
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    result = run_module("cartpole_dqn.tune", "--trials", "1", *TINY, "--study-name", "dash", cwd=workdir)
    assert result.returncode == 0, result.stderr
    app = wsgi(open_storage(StoreSettings(None, workdir / "experiments" / "tuning" / "journal.log")))
    environ: dict[str, object] = {"PATH_INFO": "/api/studies", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200")
    names = [s["study_name"] for s in json.loads(body)["study_summaries"]]
    assert "dash" in names


def test_the_study_records_its_base_config_and_refuses_to_mix_in_others(workdir: Path) -> None:
    first = run_module("cartpole_dqn.tune", "--trials", "1", *TINY, "--study-name", "rec", cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert "plot: param_importances skipped (it needs two or more completed trials" in first.stdout
    study = load(workdir, "rec")
    assert study.user_attrs["space"] == "core"
    assert RunConfig.from_mapping(study.user_attrs["base_config"]).total_timesteps == 2000

    # A selection run with another budget writes the best.yaml of what the study ran, not of its flags.
    report = run_module(
        "cartpole_dqn.tune",
        "--select",
        "--study-name",
        "rec",
        "--timesteps",
        "9999",
        "--validate-seeds",
        "0",
        cwd=workdir,
    )
    assert report.returncode == 0, report.stderr
    assert load_config(workdir / "experiments" / "tuning" / "rec" / "best.yaml").total_timesteps == 2000

    before = tree_digest(workdir / "experiments" / "tuning")
    other = ["--trials", "2", "--timesteps", "3000", "--workers", "1", "--study-name", "rec"]
    refused = run_module("cartpole_dqn.tune", *other, cwd=workdir)
    assert_one_line_error(refused, "argument --study-name:", "study 'rec' was run with another base config")
    assert "total_timesteps 2000 -> 3000" in refused.stderr
    refused = run_module("cartpole_dqn.tune", *TINY, "--space", "full", "--study-name", "rec", cwd=workdir)
    assert_one_line_error(refused, "another search space 'core' (this run: 'full')")
    assert tree_digest(workdir / "experiments" / "tuning") == before
    assert len(load(workdir, "rec").trials) == 1
