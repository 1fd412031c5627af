"""The bad-input suite: every CLI (train, evaluate, tune, benchmark, export) fed malformed input.

Each case asserts exit status 2, one stderr line naming the problem, no traceback, and that no
existing file changed. (More cases for tune and benchmark live in their own test modules.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_in_process, run_module, tree_digest

TRAIN = "cartpole_dqn.train"
ZOO = Path(__file__).parent / "fixtures" / "zoo" / "dqn.yml"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--gamma", "1.5"], ["gamma must be in (0, 1]", "1.5"]),
        (["--gamma", "0"], ["gamma must be in (0, 1]"]),
        (["--batch-size", "0"], ["batch_size must be in [1, inf)", "got 0"]),
        (["--timesteps", "-100"], ["total_timesteps must be in [1, inf)", "-100"]),
        (["--seed", "abc"], ["--seed", "invalid integer value: 'abc'"]),
        (["--env", "CartPol-v1"], ["unknown env id 'CartPol-v1'", "did you mean 'CartPole-v1'"]),
        (["--env", "Pendulum-v1"], ["Pendulum-v1", "Box action space", "Discrete"]),
        (["--device", "tpu"], ["device must be one of auto, cpu, cuda"]),
        (["--policy", "CnnPolicy"], ["--policy", "invalid choice: 'CnnPolicy'"]),
        (["--config", "missing.yaml"], ["config file not found: missing.yaml"]),
        (["--run-name", "../escape"], ["argument --run-name: invalid run name '../escape'"]),
        (["--bogus-flag"], ["unrecognized arguments: --bogus-flag"]),
        (["--gama", "0.9"], ["unrecognized arguments: --gama 0.9; did you mean --gamma?"]),
        (["--lr", "0.1"], ["unrecognized arguments: --lr 0.1; did you mean --learning-rate?"]),
        (["--batchsize", "8"], ["did you mean --batch-size?"]),
        (["--config", str(ZOO)], ["zoo file with one block per env: choose one with --env-id"]),
        (["--config", str(ZOO), "--env-id", "PongNoFrameskip-v4"], ["Atari envs", "not supported"]),
    ],
)
def test_train_rejects_bad_input(workdir: Path, args: list[str], needles: list[str]) -> None:
    result = run_in_process(TRAIN, *args, "--no-progress", cwd=workdir)
    assert_one_line_error(result, *needles)
    assert not (workdir / "experiments" / "runs").exists()
    assert not (workdir / "tensorboard_logs").exists() or not any((workdir / "tensorboard_logs").iterdir())


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("gamma: 0.9\nfoo: 1\n", ["unknown key 'foo'", "bad.yaml"]),
        ("gamma: [0.9\n", ["not valid YAML", "bad.yaml"]),
        ("", ["config file is empty"]),
        ("batch_size: lots\n", ["batch_size must be an integer", "'lots'"]),
    ],
)
def test_train_rejects_bad_config_files(workdir: Path, content: str, needles: list[str]) -> None:
    (workdir / "bad.yaml").write_text(content)
    result = run_in_process(TRAIN, "--config", "bad.yaml", cwd=workdir)
    assert_one_line_error(result, *needles)


def test_cuda_without_cuda_is_one_line(workdir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_module(TRAIN, "--device", "cuda", cwd=workdir)
    assert_one_line_error(result, "device 'cuda' requested but CUDA is not available")


def test_an_env_whose_physics_engine_is_missing_names_the_extra_to_install(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LunarLander needs Box2D: without it, one line naming this package's extra (gymnasium's own
    hint names a swig build the pinned wheel does not need). Box2D is hidden even where it is
    installed: a None entry in sys.modules makes its import fail."""
    import sys

    for name in [m for m in sys.modules if m == "Box2D" or m.startswith("gymnasium.envs.box2d")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "Box2D", None)
    result = run_in_process(TRAIN, "--env-id", "LunarLander-v3", "--no-progress", cwd=workdir)
    hint = 'pip install -c constraints.txt -e ".[box2d]"'
    assert_one_line_error(result, "LunarLander-v3", "needs Box2D", hint)
    runs = workdir / "experiments" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # refused before anything is written


def test_taken_run_name_is_refused_and_the_old_run_untouched(workdir: Path) -> None:
    old = workdir / "experiments" / "runs" / "mine"
    old.mkdir(parents=True)
    (old / "results.json").write_text('{"keep": true}\n')
    before = tree_digest(workdir / "experiments")
    result = run_module(TRAIN, "--run-name", "mine", "--timesteps", "100", cwd=workdir)
    assert_one_line_error(result, "run name 'mine' is already used")
    assert tree_digest(workdir / "experiments") == before


@pytest.mark.parametrize(
    ("setup", "args", "needles"),
    [
        (None, ["nothing.zip"], ["model file not found: nothing.zip"]),
        ("garbage", ["model.zip"], ["not a model file", "model.zip"]),
        ("emptyzip", ["model.zip"], ["cannot load model model.zip"]),
        (None, ["x.zip", "--episodes", "0"], ["--episodes must be >= 1"]),
        (None, ["."], ["model file not found"]),
    ],
)
def test_evaluate_rejects_bad_input(
    tmp_path: Path, setup: str | None, args: list[str], needles: list[str]
) -> None:
    import zipfile

    if setup == "garbage":
        (tmp_path / "model.zip").write_bytes(b"\x00\x01not a zip at all")
    elif setup == "emptyzip":
        with zipfile.ZipFile(tmp_path / "model.zip", "w") as archive:
            archive.writestr("data", "{not json")
    before = tree_digest(tmp_path)
    result = run_in_process("cartpole_dqn.evaluate", *args, cwd=tmp_path)
    assert_one_line_error(result, *needles)
    assert tree_digest(tmp_path) == before


@pytest.fixture(scope="module")
def finished_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small finished run, trained once for the module (a working folder with its run and logs)."""
    work = tmp_path_factory.mktemp("finished")
    result = run_module(
        TRAIN,
        "--timesteps",
        "600",
        "--learning-starts",
        "200",
        "--eval-freq",
        "300",
        "--run-name",
        "done",
        "--no-progress",
        cwd=work,
    )
    assert result.returncode == 0, result.stderr
    return work


@pytest.fixture
def finished_run(workdir: Path, finished_template: Path) -> Path:
    """A copy of the finished run in this test's working folder, to check that bad commands leave it
    byte for byte intact."""
    import shutil

    for folder in ("experiments/runs", "tensorboard_logs"):
        shutil.copytree(finished_template / folder, workdir / folder)
    return workdir / "experiments" / "runs" / "done"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["cartpole_dqn.train", "--resume", "experiments/runs/done"], ["already finished"]),
        (
            ["cartpole_dqn.train", "--resume", "experiments/runs/done", "--config", "x.yaml"],
            ["cannot be combined"],
        ),
        (
            ["cartpole_dqn.train", "--run-name", "done", "--timesteps", "100"],
            ["run name 'done' is already used"],
        ),
        (
            ["cartpole_dqn.train", "--output-dir", "/proc/cartpole-dqn", "--timesteps", "100"],
            ["argument --output-dir:"],
        ),
        (
            ["cartpole_dqn.export", "experiments/runs/done", "--out", "experiments/runs/done"],
            ["already exists"],
        ),
        (["cartpole_dqn.export", "experiments/runs/nothing", "--out", "x"], ["model file not found"]),
        (["cartpole_dqn.export", "experiments/runs/done"], ["the following arguments are required: --out"]),
        (
            ["cartpole_dqn.evaluate", "experiments/runs/done", "--env", "Acrobot-v1"],
            ["does not fit env 'Acrobot-v1'"],
        ),
        (
            ["cartpole_dqn.evaluate", "experiments/runs/done", "--episodes", "ten"],
            ["invalid integer value: 'ten'"],
        ),
        (
            ["cartpole_dqn.evaluate", "experiments/runs/done", "--gif", "experiments/runs/done/model.zip"],
            ["must end in .gif or .mp4"],
        ),
        (["cartpole_dqn.benchmark", "--configs", "experiments/runs/done/results.json"], ["results.json"]),
        (["cartpole_dqn.tune", "--config", "experiments/runs/done/model.zip"], ["model.zip"]),
    ],
)
def test_bad_commands_leave_an_existing_run_untouched(
    workdir: Path, finished_run: Path, args: list[str], needles: list[str]
) -> None:
    before = tree_digest(finished_run)
    result = run_in_process(*args, cwd=workdir)
    assert_one_line_error(result, *needles)
    assert tree_digest(finished_run) == before


def test_help_shows_every_hyperparameter_default(workdir: Path) -> None:
    result = run_in_process(TRAIN, "--help", cwd=workdir)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for needle in (
        "--gamma X discount factor, in (0, 1] (default: 0.99)",
        "--total-timesteps N, --timesteps N, --n-timesteps N training budget in env steps (default: 50000)",
        "--prioritized-replay, --no-prioritized-replay, --per, --no-per",
        "(default: 64 64)",
    ):
        assert needle in text, needle


def test_a_zoo_file_and_a_config_name_run_through_train(workdir: Path) -> None:
    """A zoo user's dqn.yml trains its env's block; --config NAME finds experiments/configs/NAME.yaml."""
    zoo = run_module(
        TRAIN,
        "--config",
        str(ZOO),
        "--env",
        "CartPole-v1",
        "--timesteps",
        "300",
        "--no-progress",
        "--run-name",
        "zoo",
        cwd=workdir,
    )
    assert zoo.returncode == 0, zoo.stderr
    saved = (workdir / "experiments" / "runs" / "zoo" / "config.yaml").read_text()
    assert (
        "net_arch:\n- 256\n- 256" in saved
        and "learning_rate: 0.0023" in saved
        and "total_timesteps: 300" in saved
    )
    named = run_module(
        TRAIN,
        "--config",
        "sb3_zoo_baseline",
        "--total-timesteps",
        "300",
        "--no-progress",
        "--run-name",
        "named",
        cwd=workdir,
    )
    assert named.returncode == 0, named.stderr
    assert "implementation: sb3" in (workdir / "experiments" / "runs" / "named" / "config.yaml").read_text()


def test_a_budget_below_learning_starts_is_warned_about_in_one_line(workdir: Path) -> None:
    result = run_module(TRAIN, "--total-timesteps", "200", "--no-progress", "--run-name", "w", cwd=workdir)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "python -m cartpole_dqn.train: warning: total_timesteps 200 <= learning_starts 500: "
        "no gradient step will run, the policy stays untrained"
    ]


@pytest.mark.parametrize(
    ("eval_freq", "steps", "when"),
    [("0", [2000], "only at the budget"), ("1500", [1500, 2000], "every 1,500 steps")],
)
def test_a_coarser_evaluation_schedule_is_allowed_and_said(
    workdir: Path, eval_freq: str, steps: list[int], when: str
) -> None:
    import json

    result = run_module(
        TRAIN, "--eval-freq", eval_freq, "--total-timesteps", "2000", "--no-early-stop", "--no-progress",
        "--run-name", "coarse", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads((workdir / "experiments" / "runs" / "coarse" / "results.json").read_text())
    assert [e["step"] for e in results["evaluations"]] == steps
    assert f"evaluated {when}: steps to solve is not measured at the protocol's 1,000-step resolution" in (
        " ".join(result.stdout.split())
    )


def test_tune_refuses_a_base_config_without_evaluations(workdir: Path) -> None:
    (workdir / "noeval.yaml").write_text("eval_freq: 0\n")
    result = run_module("cartpole_dqn.tune", "--config", "noeval.yaml", "--trials", "1", cwd=workdir)
    assert_one_line_error(result, "eval_freq must be >= 1, got 0")
    assert not (workdir / "experiments" / "tuning").exists()
