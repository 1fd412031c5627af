"""Distributed sweeps on a real PostgreSQL server (started by .ci/run; see .ci/postgres.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import never_stopping_base, run_module, sigkill_when

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get("CARTPOLE_DQN_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must run these against PostgreSQL: .ci/run sources .ci/postgres.sh")
        pytest.skip("no PostgreSQL: run `source .ci/postgres.sh` first")
    return url


def tune_argv(url: str, study: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cartpole_dqn.tune",
        "--storage",
        url,
        "--study-name",
        study,
        "--workers",
        "1",
        "--validate-seeds",
        "0",
        *extra,
    ]


def load(url: str, study: str) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=url)


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))


def test_two_tune_commands_join_one_study(pg_url: str, tmp_path: Path) -> None:
    study = f"join-{uuid.uuid4().hex[:8]}"
    argv = tune_argv(pg_url, study, "--trials", "4", "--timesteps", "1500")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    folders = [tmp_path / "machine-a", tmp_path / "machine-b"]  # as if on two machines
    processes = []
    for folder in folders:
        folder.mkdir()
        processes.append(
            subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err.decode()[-2000:]
    loaded = load(pg_url, study)
    assert finished(loaded) == 4 and len(loaded.trials) == 4
    assert len({t.user_attrs["worker_pid"] for t in loaded.trials}) == 2, "both commands ran trials"


def test_sigkilled_worker_is_recovered_by_heartbeat(pg_url: str, tmp_path: Path) -> None:
    study = f"kill-{uuid.uuid4().hex[:8]}"
    extra = [
        "--trials",
        "3",
        "--config",
        str(never_stopping_base(tmp_path)),
        "--timesteps",
        "10000",
        "--pruner",
        "none",
        "--seeds-per-trial",
        "1",
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "3",
    ]

    def a_running_trial() -> list[optuna.trial.FrozenTrial] | None:
        try:
            return load(pg_url, study).get_trials(states=(TrialState.RUNNING,)) or None
        except KeyError:
            return None

    running = sigkill_when(
        "cartpole_dqn.tune", tune_argv(pg_url, study, *extra)[3:], tmp_path, a_running_trial, 1.5
    )
    orphan = running[0].number
    assert load(pg_url, study).trials[orphan].state == TrialState.RUNNING

    rerun = run_module("cartpole_dqn.tune", *tune_argv(pg_url, study, *extra)[3:], cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    loaded = load(pg_url, study)
    assert finished(loaded) == 3
    assert not loaded.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert loaded.trials[orphan].state == TrialState.FAIL
    retried = [t for t in loaded.trials if t.system_attrs.get("failed_trial") == orphan]
    assert len(retried) == 1 and retried[0].params == loaded.trials[orphan].params


def test_study_of_another_direction_on_postgres_is_refused(pg_url: str, tmp_path: Path) -> None:
    study = f"dir-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=study, storage=pg_url, direction="minimize")
    result = run_module("cartpole_dqn.tune", *tune_argv(pg_url, study, "--trials", "1")[3:], cwd=tmp_path)
    assert result.returncode == 2 and "already exists with direction minimize" in result.stderr
    assert load(pg_url, study).trials == []


def test_readme_multi_machine_template_runs(pg_url: str, tmp_path: Path) -> None:
    import re
    import shlex

    from tests.conftest import REPO

    readme = (REPO / "docs" / "tuning.md").read_text()
    (line,) = [
        x for x in readme.splitlines() if x.startswith("python -m cartpole_dqn.tune") and "DBHOST" in x
    ]
    template = shlex.split(line)
    study = f"readme-{uuid.uuid4().hex[:8]}"
    argv = [pg_url if "DBHOST" in a else a for a in template[3:]]
    argv[argv.index("--study-name") + 1] = study
    argv[argv.index("--trials") + 1] = "2"  # the template's 200 trials, cut down for the test
    assert re.fullmatch(r"postgresql\+psycopg2://USER:PASSWORD@DBHOST:5432/optuna", template[-1])
    result = run_module(
        "cartpole_dqn.tune",
        *argv,
        "--timesteps",
        "1500",
        "--workers",
        "1",
        "--validate-seeds",
        "1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert finished(load(pg_url, study)) == 2


def test_a_postgres_url_as_hosting_services_write_it_works_without_experimental_warnings(
    pg_url: str, tmp_path: Path
) -> None:
    """``postgres://`` (SQLAlchemy dropped the alias) is taken as ``postgresql://``, and Optuna's
    experimental-API warnings (heartbeat, stale trials) are not shown to users."""
    study = f"alias-{uuid.uuid4().hex[:8]}"
    url = "postgres://" + pg_url.split("://", 1)[1]
    argv = tune_argv(url, study, "--trials", "2", "--timesteps", "1000")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # warnings as users see them
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert finished(load(pg_url, study)) == 2


def pg_ctl(*args: str) -> None:
    """Stop or start the test server (.ci/postgres.sh's cluster), as its user."""
    binary = Path(os.environ["CARTPOLE_DQN_TEST_PG_BIN"]) / "pg_ctl"
    data = Path(os.environ["CARTPOLE_DQN_TEST_PG_DATA"])
    command = [str(binary), "-D", str(data / "data"), "-w", *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", os.environ["CARTPOLE_DQN_TEST_PG_USER"], "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def start_server() -> None:
    data = os.environ["CARTPOLE_DQN_TEST_PG_DATA"]
    port = os.environ["CARTPOLE_DQN_TEST_PG_PORT"]
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c max_connections=200"
    pg_ctl("-l", f"{data}/server.log", "-o", options, "start")


def test_a_server_restart_mid_sweep_ends_in_one_line_and_a_rerun_completes_the_study(
    pg_url: str, tmp_path: Path
) -> None:
    if "CARTPOLE_DQN_TEST_PG_DATA" not in os.environ:
        pytest.fail("the restart test needs the server .ci/postgres.sh started (CARTPOLE_DQN_TEST_PG_DATA)")
    study = f"restart-{uuid.uuid4().hex[:8]}"
    extra = ["--trials", "4", "--timesteps", "5000", "--seeds-per-trial", "1"]
    extra += ["--heartbeat-interval", "1", "--grace-period", "3"]
    extra += ["--config", str(never_stopping_base(tmp_path))]  # trials still running when it stops
    argv = tune_argv(pg_url, study, *extra, "--no-progress")
    argv[argv.index("--workers") + 1] = "2"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if load(pg_url, study).get_trials(states=(TrialState.RUNNING,)):
                    break
            except KeyError:
                pass
            time.sleep(0.3)
        time.sleep(1.0)
        pg_ctl("-m", "fast", "stop")
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        start_server()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 1 and len(lines) == 1, stderr
    assert "lost the study storage" in lines[0] and "run the same command again" in lines[0]
    rerun = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    loaded = load(pg_url, study)
    assert finished(loaded) == 4
    assert not loaded.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
