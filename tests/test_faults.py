"""What users and machines do to sweeps, benchmarks and runs: signals, a cut journal, a full disk,
a read-only folder, two processes on one run (README: Reliability). Every test sends the real
signal to a real process, or makes the real fault happen (a tmpfs that fills up or turns read-only)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import assert_one_line_error, never_stopping_base, run_module

pytestmark = pytest.mark.slow


def start(module: str, args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], Any], timeout: float = 120, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def journal_study(workdir: Path, name: str) -> optuna.Study:
    from cartpole_dqn.tuning.studies import StoreSettings, open_storage

    storage = open_storage(StoreSettings(None, workdir / "experiments" / "tuning" / "journal.log"))
    return optuna.load_study(study_name=name, storage=storage)


def states(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))


SWEEP = [
    *("--trials", "2", "--seeds-per-trial", "1", "--timesteps", "10000", "--workers", "2"),
    *("--pruner", "none", "--validate-seeds", "0", "--config", "never-stopping.yaml"),
]


def start_sweep_with_running_trials(workdir: Path, name: str) -> tuple[subprocess.Popen[str], list[int]]:
    """A two-worker sweep, once both workers are training a trial; returns it and its workers' pids."""
    never_stopping_base(workdir)  # trials run their whole budget: still running when the signal comes
    process = start("cartpole_dqn.tune", [*SWEEP, "--study-name", name], workdir)

    def running() -> bool:
        try:
            return len(journal_study(workdir, name).get_trials(states=(TrialState.RUNNING,))) == 2
        except (KeyError, OSError, ValueError):
            return False

    wait_for(running, what="two running trials")
    time.sleep(1.0)  # mid-training
    workers = children(process.pid)
    assert len(workers) >= 2, workers
    return process, workers


def resume_command(stderr: str) -> list[str]:
    (line,) = [line for line in stderr.splitlines() if "resume with: " in line]
    argv = shlex.split(line.split("resume with: ", 1)[1])
    assert argv[:3] == ["python", "-m", argv[2]]
    return argv[2:]


# SIGKILL: no handler runs; SIGINT: the handler SIGTERM shares (sweep.py installs one for both), and
# it stops the workers with SIGTERM, so a SIGTERM case would run the same code again.
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_tune_workers_die_with_their_parent_and_the_same_command_completes_the_study(
    workdir: Path, how: str
) -> None:
    process, workers = start_sweep_with_running_trials(workdir, f"die-{how}")
    sent = time.monotonic()
    process.send_signal(getattr(signal, how))
    _, stderr = process.communicate(timeout=60)
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=20, what="the workers to end")
    took = time.monotonic() - sent
    assert took < 20, took
    if how == "SIGKILL":
        assert process.returncode == -signal.SIGKILL
        again = ["cartpole_dqn.tune", "--study-name", "die-SIGKILL", *SWEEP]
    else:
        assert process.returncode == 128 + getattr(signal, how), stderr
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "interrupted: 0 of 2 trials finished" in lines[0], lines
        again = resume_command(stderr)
    study = journal_study(workdir, f"die-{how}")
    assert finished(study) == 0
    if how != "SIGKILL":  # the workers stopped cleanly: their trials failed and are enqueued again
        assert states(study).get("RUNNING", 0) == 0 and states(study)["WAITING"] == 2
    rerun = run_module(again[0], *again[1:], cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    study = journal_study(workdir, f"die-{how}")
    assert finished(study) == 2
    assert states(study).get("RUNNING", 0) == 0 and states(study).get("WAITING", 0) == 0
    retried = {t.user_attrs.get("retry_of") for t in study.trials} - {None}
    assert len(retried) == 2, stderr  # both interrupted trials ran again


def test_a_second_ctrl_c_stops_tune_at_once(workdir: Path) -> None:
    process, workers = start_sweep_with_running_trials(workdir, "twice")
    process.send_signal(signal.SIGINT)
    time.sleep(0.1)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 130
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=5, what="the workers to be killed")
    assert time.monotonic() - sent < 5


def test_ctrl_c_in_benchmark_keeps_finished_runs_and_the_printed_command_resumes_it(workdir: Path) -> None:
    args = [
        "--configs",
        "default",
        "--seeds",
        "4",
        "--timesteps",
        "3000",
        "--jobs",
        "2",
        "--bootstrap",
        "200",
    ]
    process = start("cartpole_dqn.benchmark", args, workdir)
    folder = workdir / "experiments" / "benchmarks"

    def one_run_recorded() -> list[Path]:
        return [p for p in folder.glob("*.runs.jsonl") if len(p.read_text().splitlines()) >= 2]

    (journal,) = wait_for(one_run_recorded, what="a finished benchmark run")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    kept = len(journal.read_text().splitlines()) - 1
    assert f"runs finished and kept in {journal.relative_to(workdir)}" in stderr
    again = resume_command(stderr)
    assert again[-2:] == ["--resume", str(journal.relative_to(workdir))]
    resumed = run_module(*again, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{kept} run{'' if kept == 1 else 's'} already finished" in resumed.stdout
    progress = [line for line in resumed.stderr.splitlines() if "solved so far" in line]
    assert len(progress) == 4 - kept  # the finished runs were not trained again
    (record,) = folder.glob("benchmark-*.json")
    assert sorted(r["seed"] for r in json.loads(record.read_text())["runs"]) == [1000, 1001, 1002, 1003]
    assert not journal.exists()


def test_a_journal_whose_last_line_was_cut_still_opens_and_the_study_completes(workdir: Path) -> None:
    args = ["--timesteps", "1000", "--workers", "1", "--validate-seeds", "0", "--study-name", "cut"]
    first = run_module("cartpole_dqn.tune", "--trials", "2", *args, cwd=workdir)
    assert first.returncode == 0, first.stderr
    journal = workdir / "experiments" / "tuning" / "journal.log"
    lines = journal.read_bytes().splitlines(keepends=True)
    os.truncate(journal, len(journal.read_bytes()) - len(lines[-1]) // 2)  # power loss mid-write
    again = run_module("cartpole_dqn.tune", "--trials", "3", *args, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "cut mid-write" in again.stderr
    study = journal_study(workdir, "cut")
    assert finished(study) == 3 and states(study).get("RUNNING", 0) == 0
    assert journal.read_bytes().endswith(b"\n")
    assert list(journal.parent.glob("journal.log.cut-*"))


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount small tmpfs folders (root only), unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"tmpfs-{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], check=False
        )
        if done.returncode != 0:
            pytest.skip("mounting a tmpfs needs root")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


TRAIN = ["--no-early-stop", "--checkpoint-every", "1000", "--buffer-size", "20000", "--no-progress"]


def assert_checkpoint_intact_and_resumable(run_dir: Path, elsewhere: Path) -> None:
    """The kept checkpoint reads back, and a copy of the run resumes from it on a disk with room."""
    import shutil

    from cartpole_dqn.run.artifacts import latest_checkpoint

    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None
    assert json.loads((checkpoint / "state.json").read_text())["num_timesteps"] >= 1000
    assert not list(run_dir.glob(".checkpoint.tmp*")) and not list(run_dir.glob(".*.tmp*"))
    copy = elsewhere / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    resumed = run_module("cartpole_dqn.train", "--resume", str(copy), "--no-progress", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_previous_checkpoint(
    workdir: Path, tmpfs: Callable[[str], Path]
) -> None:
    disk = tmpfs("2200k")  # room for one checkpoint (about 1.4 MB here) and the run's files, not two
    args = ["--total-timesteps", "4000", *TRAIN, "--output-dir", str(disk), "--run-name", "r"]
    result = run_module("cartpole_dqn.train", *args, cwd=workdir)
    assert_one_line_error(result, "cannot write a checkpoint in", "No space left on device", status=1)
    assert "the previous checkpoint is intact" in result.stderr
    assert_checkpoint_intact_and_resumable(disk / "r", workdir)


def test_an_output_folder_turned_read_only_mid_run_is_one_line_and_keeps_the_checkpoint(
    workdir: Path, tmpfs: Callable[[str], Path]
) -> None:
    disk = tmpfs("64m")
    args = ["--total-timesteps", "8000", *TRAIN, "--output-dir", str(disk), "--run-name", "r"]
    process = start("cartpole_dqn.train", args, workdir)
    wait_for(lambda: (disk / "r" / "checkpoint" / "state.json").is_file(), what="the first checkpoint")
    # the remount waits for a moment when no file there is open for writing
    wait_for(lambda: subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=False).returncode == 0)
    _, stderr = process.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 1 and len(lines) == 1, stderr
    assert "cannot write" in lines[0] and "Read-only file system" in lines[0]
    assert_checkpoint_intact_and_resumable(disk / "r", workdir)


def test_one_process_per_run_folder(workdir: Path) -> None:
    """A second process on a run being trained (a resume, or a second resume) is refused in one line
    and changes nothing; once the first process is gone, the resume runs."""
    process = start(
        "cartpole_dqn.train", ["--total-timesteps", "12000", *TRAIN, "--run-name", "busy"], workdir
    )
    run_dir = workdir / "experiments" / "runs" / "busy"
    wait_for(lambda: (run_dir / "checkpoint" / "state.json").is_file(), what="the first checkpoint")
    refused = run_module("cartpole_dqn.train", "--resume", str(run_dir), "--no-progress", cwd=workdir)
    assert_one_line_error(refused, "argument --resume:", "is in use by another process")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    resumed = run_module("cartpole_dqn.train", "--resume", str(run_dir), "--no-progress", cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert (run_dir / "results.json").is_file()


def test_two_trains_started_at_once_with_one_run_name_one_runs_the_other_is_refused(workdir: Path) -> None:
    args = ["--run-name", "same", "--total-timesteps", "1500", "--no-progress"]
    processes = [start("cartpole_dqn.train", args, workdir) for _ in range(2)]
    results = [(p, *p.communicate(timeout=300)) for p in processes]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [err for _, _, err in results]
    (refused,) = [err for p, _, err in results if p.returncode == 2]
    lines = [line for line in refused.splitlines() if line.strip()]
    assert len(lines) == 1 and "run name 'same' is already used" in lines[0]
    run_dir = workdir / "experiments" / "runs" / "same"
    results_json = json.loads((run_dir / "results.json").read_text())
    assert results_json["run_name"] == "same" and results_json["total_steps"] >= 1500
    assert {p.name for p in (workdir / "experiments" / "runs").iterdir()} == {"same"}
