"""Every file ``train --resume``, ``evaluate`` and ``export`` read, corrupted: one line, exit 2, no
traceback, and nothing in the run folder changed. Through each command's own ``cli(argv)`` (in
process: each refusal comes before any training), on real runs; one case per command also in a
fresh interpreter."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_in_process, run_module, sigkill_when, tree_digest

pytestmark = pytest.mark.slow

GARBAGE = b"\x00not what it should be{"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run ``done`` and a run ``cut`` killed after its first checkpoint."""
    root = tmp_path_factory.mktemp("corrupt")
    done = run_module(
        "cartpole_dqn.train",
        "--timesteps",
        "1200",
        "--learning-starts",
        "200",
        "--eval-freq",
        "600",
        "--run-name",
        "done",
        "--no-progress",
        cwd=root,
    )
    assert done.returncode == 0, done.stderr
    state = root / "experiments" / "runs" / "cut" / "checkpoint" / "state.json"
    args = [
        "--timesteps",
        "30000",
        "--checkpoint-every",
        "600",
        "--no-early-stop",
        "--learning-starts",
        "200",
    ]
    sigkill_when(
        "cartpole_dqn.train",
        [*args, "--run-name", "cut", "--no-progress"],
        root,
        lambda: state.exists() or None,
        settle=0.0,
    )
    return root


def corrupted(runs: Path, run: str, member: str, how: str, name: str) -> Path:
    """A copy of ``run`` (as ``name``) with ``member`` overwritten by garbage or cut in half."""
    source = runs / "experiments" / "runs" / run
    copy = runs / "experiments" / "runs" / name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".lock"))
    path = copy / member
    data = path.read_bytes()
    path.write_bytes(GARBAGE if how == "garbage" else data[: len(data) // 2])
    return copy


def unchanged_after(
    copy: Path, *argv: str, needles: tuple[str, ...], cwd: Path, fresh_interpreter: bool = False
) -> None:
    before = tree_digest(copy)
    result = (run_module if fresh_interpreter else run_in_process)(*argv, cwd=cwd)
    assert_one_line_error(result, *needles)
    assert tree_digest(copy) == before, "the failed command changed the run folder"


@pytest.mark.parametrize("how", ["garbage", "truncated"])
@pytest.mark.parametrize(
    ("member", "needle"),
    [
        ("checkpoint/replay_buffer.pkl", "cannot read the checkpoint's replay buffer"),
        ("checkpoint/model.zip", "checkpoint"),
        ("checkpoint/state.json", "checkpoint"),
    ],
)
def test_resume_with_a_corrupt_checkpoint_file(runs: Path, member: str, needle: str, how: str) -> None:
    copy = corrupted(runs, "cut", member, how, f"cut-{member.replace('/', '-')}-{how}")
    unchanged_after(
        copy,
        "cartpole_dqn.train",
        "--resume",
        str(copy),
        "--no-progress",
        needles=(needle, member.split("/")[-1]),
        cwd=runs,
        fresh_interpreter=how == "garbage" and member == "checkpoint/replay_buffer.pkl",
    )


@pytest.mark.parametrize("how", ["garbage", "truncated"])
@pytest.mark.parametrize(
    ("member", "needle"),
    [("results.json", "results file"), ("final_model.zip", "cannot read the final model")],
)
def test_continuing_a_finished_run_with_a_corrupt_file(
    runs: Path, member: str, needle: str, how: str
) -> None:
    copy = corrupted(runs, "done", member, how, f"done-{member}-{how}")
    unchanged_after(
        copy,
        "cartpole_dqn.train",
        "--resume",
        str(copy),
        "--total-timesteps",
        "2400",
        "--no-progress",
        needles=(needle, member),
        cwd=runs,
        fresh_interpreter=how == "garbage" and member == "results.json",
    )


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_evaluate_and_export_with_a_corrupt_model(runs: Path, how: str) -> None:
    copy = corrupted(runs, "done", "model.zip", how, f"done-model-{how}")
    fresh = how == "garbage"
    unchanged_after(
        copy,
        "cartpole_dqn.evaluate",
        str(copy),
        "--episodes",
        "2",
        needles=("model.zip",),
        cwd=runs,
        fresh_interpreter=fresh,
    )
    out = runs / f"export-{how}"
    unchanged_after(
        copy,
        "cartpole_dqn.export",
        str(copy),
        "--out",
        str(out),
        needles=("model.zip",),
        cwd=runs,
        fresh_interpreter=fresh,
    )
    assert not out.exists()


def test_a_finished_run_folder_has_no_lock_file(runs: Path) -> None:
    assert not (runs / "experiments" / "runs" / "done" / ".lock").exists()
