"""Real training runs through the real CLIs, and TensorBoard reading what they wrote."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from cartpole_dqn.config import load_config
from tests.conftest import assert_one_line_error, run_module

pytestmark = pytest.mark.slow

RESULT_FIELDS = {
    "env_id",
    "seed",
    "threshold",
    "solved",
    "steps_to_solve",
    "wall_to_solve_s",
    "total_steps",
    "eval_mean",
    "eval_std",
    "eval_episodes",
    "model_path",
    "stays_solved",
}


@pytest.fixture(scope="module")
def solved_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """One default-config training run on CartPole-v1, seed 0, through the CLI as a user runs it."""
    work = tmp_path_factory.mktemp("train")
    result = run_module("cartpole_dqn.train", "--seed", "0", "--run-name", "s0", "--no-progress", cwd=work)
    assert result.returncode == 0, result.stderr
    run_dir = work / "experiments" / "runs" / "s0"
    return run_dir, json.loads((run_dir / "results.json").read_text()), result.stdout


def test_default_config_solves_cartpole_and_the_saved_model_stays_solved(
    solved_run: tuple[Path, dict[str, Any], str],
) -> None:
    run_dir, results, stdout = solved_run
    assert results.keys() >= RESULT_FIELDS
    assert results["solved"] is True
    assert results["threshold"] == 475.0
    assert 0 < results["steps_to_solve"] <= 50_000 and results["wall_to_solve_s"] > 0
    assert results["eval_episodes"] == 100 and results["eval_mean"] >= 475
    assert Path(results["model_path"]) == run_dir / "model.zip" and (run_dir / "model.zip").is_file()
    # The deciding evaluation that marked the solve is in the history, and it reached the threshold.
    deciding = [e for e in results["evaluations"] if e["deciding"] and e["step"] == results["steps_to_solve"]]
    assert deciding and deciding[0]["mean"] >= 475 and deciding[0]["episodes"] == 100
    assert "vs threshold" in stdout and "PASS" in stdout and "of 500" in stdout


def test_saved_config_reproduces_the_run_config(solved_run: tuple[Path, dict[str, Any], str]) -> None:
    """config.yaml holds every value the run used: defaults, the --seed flag, the resolved threshold."""
    from cartpole_dqn.config import RunConfig

    run_dir, _, _ = solved_run
    assert load_config(run_dir / "config.yaml") == RunConfig(seed=0, threshold=475.0)
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert set(written) == set(RunConfig.field_names())


def test_evaluate_scores_the_saved_model_and_records_a_gif(
    solved_run: tuple[Path, dict[str, Any], str],
) -> None:
    run_dir, _, _ = solved_run
    gif = run_dir.parent / "agent.gif"
    result = run_module(
        "cartpole_dqn.evaluate",
        str(run_dir / "model.zip"),
        "--episodes",
        "100",
        "--seed",
        "777",
        "--gif",
        str(gif),
        cwd=run_dir.parent,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "greedy return" in x)
    assert float(line.split()[2]) >= 475.0
    assert "PASS" in result.stdout
    from PIL import Image

    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames > 100
        assert image.size == (600, 400)  # CartPole's full render size: the track line is kept
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            durations.append(image.info["duration"])
    gif_line = next(x for x in result.stdout.splitlines() if "recording" in x)
    assert "600x400" in gif_line and "episode return" in gif_line
    recorded = int(gif_line.split("(", 1)[1].split(" frames")[0])
    # Real time: the episode's frames play at 30 fps (GIF writers may merge identical frames,
    # summing their delays, so the total duration is what to check).
    assert sum(durations) == pytest.approx(recorded * 1000 / 30, rel=0.01)
    assert "XDG_RUNTIME_DIR" not in result.stderr
    again = run_module("cartpole_dqn.evaluate", str(run_dir), "--gif", str(gif), cwd=run_dir.parent)
    assert_one_line_error(again, "already exists")
    video = run_dir.parent / "agent.mp4"
    mp4 = run_module(
        "cartpole_dqn.evaluate", str(run_dir), "--episodes", "5", "--gif", str(video), cwd=run_dir.parent
    )
    assert mp4.returncode == 0, mp4.stderr
    import imageio.v3 as iio

    meta = iio.immeta(video, plugin="FFMPEG")
    assert meta["fps"] == 30 and tuple(meta["size"]) == (600, 400)
    final = run_module(
        "cartpole_dqn.evaluate", str(run_dir), "--model", "final", "--episodes", "5", cwd=run_dir.parent
    )
    assert final.returncode == 0, final.stderr
    assert str(run_dir / "final_model.zip") in final.stdout


def test_a_second_run_gets_its_own_folder(tmp_path: Path) -> None:
    for _ in range(2):
        result = run_module(
            "cartpole_dqn.train",
            "--timesteps",
            "300",
            "--eval-freq",
            "300",
            "--learning-starts",
            "100",
            "--no-progress",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
    runs = sorted((tmp_path / "experiments" / "runs").iterdir())
    logs = sorted((tmp_path / "tensorboard_logs").iterdir())
    assert len(runs) == 2 and len(logs) == 2
    assert all((r / "results.json").is_file() for r in runs)


def test_acrobot_short_run_takes_the_threshold_from_its_spec(tmp_path: Path) -> None:
    result = run_module(
        "cartpole_dqn.train",
        "--env",
        "Acrobot-v1",
        "--timesteps",
        "2000",
        "--eval-freq",
        "1000",
        "--eval-episodes",
        "10",
        "--curve-episodes",
        "0",
        "--run-name",
        "acro",
        "--no-progress",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "experiments" / "runs" / "acro" / "results.json").read_text())
    assert results["env_id"] == "Acrobot-v1" and results["threshold"] == -100.0
    # SB3 collects train_freq (64) steps at a time, so a run can end up to one chunk past its budget.
    assert results["total_steps"] == 2000 and results["max_return"] is None
    # eval_mean is the saved model re-scored on the final seeds: an independent evaluation agrees.
    from cartpole_dqn import DQNAgent
    from cartpole_dqn.run.evaluation import evaluate_greedy

    model = DQNAgent.load(results["model_path"], device="cpu")
    again = evaluate_greedy(model.policy, "Acrobot-v1", 10, results["final_eval_seed"], 500)
    assert results["eval_mean"] == again.mean and results["eval_episodes"] == 10


def scalars(event_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]
    }


def config_text(event_dir: Path) -> str:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    accumulator = EventAccumulator(str(event_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    (event,) = accumulator.Tensors("config/text_summary")
    return str(tensor_util.make_ndarray(event.tensor_proto).item().decode())


def test_tensorboard_event_file_holds_our_scalars(solved_run: tuple[Path, dict[str, Any], str]) -> None:
    _, results, _ = solved_run
    logged = scalars(Path(results["tensorboard_dir"]))
    for tag in (
        "eval/mean_reward",
        "eval/std_reward",
        "eval/solved",
        "rollout/exploration_rate",
        "train/q_mean",
        "train/loss",
    ):
        assert tag in logged, (tag, sorted(logged))
    assert "total_timesteps: " in config_text(Path(results["tensorboard_dir"]))  # the run's config, as text
    solved_flags = logged["eval/solved"]
    assert solved_flags[-1] == (results["steps_to_solve"], 1.0)
    assert all(v == 0.0 for _, v in solved_flags[:-1])
    assert_one_eval_point_per_evaluation(logged, results["evaluations"])
    assert logged["eval/mean_reward"][-1] == (
        results["steps_to_solve"],
        pytest.approx(results["evaluations"][-1]["mean"]),
    )
    assert logged["eval/deciding_mean_reward"][-1][1] >= 475


def assert_one_eval_point_per_evaluation(logged: dict[str, Any], evaluations: list[dict[str, Any]]) -> None:
    """``eval/mean_reward`` has a point at every evaluation (as SB3's EvalCallback logs it), with
    ``eval/episodes`` beside it; ``eval/deciding_mean_reward`` holds the complete (deciding) ones."""
    every = [(e["step"], pytest.approx(e["mean"])) for e in evaluations]
    assert logged["eval/mean_reward"] == every
    assert logged["eval/std_reward"] == [(e["step"], pytest.approx(e["std"])) for e in evaluations]
    assert logged["eval/episodes"] == [(e["step"], e["episodes"]) for e in evaluations]
    deciding = [(e["step"], pytest.approx(e["mean"])) for e in evaluations if e["deciding"]]
    assert logged.get("eval/deciding_mean_reward", []) == deciding


def test_an_unsolved_run_has_its_whole_reward_curve_in_tensorboard(tmp_path: Path) -> None:
    """Every evaluation of a run that never solves is stopped early (a pass is impossible), and
    each still gets its point on eval/mean_reward."""
    from cartpole_dqn.config import RunConfig
    from cartpole_dqn.run.artifacts import allocate_run
    from cartpole_dqn.run.envs import resolve_env
    from cartpole_dqn.run.runner import train_new_run

    config = RunConfig(
        total_timesteps=1500, eval_freq=500, learning_starts=100, learning_rate=1e-7, eval_episodes=20
    )
    config, env = resolve_env(config)
    paths = allocate_run(tmp_path / "runs", tmp_path / "tb", "unsolved", "unsolved")
    result = train_new_run(config, env, paths)
    assert not result.solved and len(result.evaluations) == 3
    assert not any(e.deciding for e in result.evaluations)
    logged = scalars(paths.tensorboard_dir)
    assert_one_eval_point_per_evaluation(logged, [asdict(e) for e in result.evaluations])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_tensorboard_server_serves_our_tags(solved_run: tuple[Path, dict[str, Any], str]) -> None:
    _, results, _ = solved_run
    logdir = Path(results["tensorboard_dir"]).parent
    port = free_port()
    tensorboard = shutil.which("tensorboard") or str(Path(sys.executable).parent / "tensorboard")
    server = subprocess.Popen(
        [tensorboard, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        tags: dict[str, Any] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5
                ) as response:
                    tags = json.loads(response.read())
                if "s0" in tags and "eval/mean_reward" in tags["s0"]:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert "s0" in tags, tags
        assert {"eval/mean_reward", "eval/solved", "rollout/exploration_rate", "train/q_mean"} <= tags[
            "s0"
        ].keys()
        query = "run=s0&tag=eval%2Fsolved"
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?{query}", timeout=10
        ) as r:
            points = json.loads(r.read())
        assert points[-1][1] == results["steps_to_solve"] and points[-1][2] == 1.0
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("config", "env_id", "threshold", "obs_dim"),
    [("mountaincar", "MountainCar-v0", -110.0, 2), ("lunarlander", "LunarLander-v3", 200.0, 8)],
)
def test_each_new_env_config_trains_evaluates_and_exports(
    tmp_path: Path, config: str, env_id: str, threshold: float, obs_dim: int
) -> None:
    """A short real run of the env's shipped config through train, evaluate and export: the
    threshold comes from the env's spec, the saved model and its pickle-free export act alike, and
    both score under the same 100-episode protocol (here 5 episodes, to stay short)."""
    import numpy as np

    from cartpole_dqn import DQNAgent, load_policy

    result = run_module(
        "cartpole_dqn.train",
        "--config",
        config,
        "--timesteps",
        "2000",
        "--learning-starts",
        "500",
        "--eval-freq",
        "1000",
        "--eval-episodes",
        "5",
        "--curve-episodes",
        "0",
        "--run-name",
        "r",
        "--no-progress",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "experiments" / "runs" / "r"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["env_id"] == env_id and results["threshold"] == threshold
    assert results["total_steps"] == 2000 and results["eval_episodes"] == 5
    assert [e["step"] for e in results["evaluations"]] == [1000, 2000]

    scored = run_module("cartpole_dqn.evaluate", str(run_dir), "--episodes", "5", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert env_id in scored.stdout and "greedy return" in scored.stdout

    exported = run_module("cartpole_dqn.export", str(run_dir), "--out", "shared", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    model = DQNAgent.load(run_dir / "model.zip", device="cpu")
    policy = load_policy(tmp_path / "shared")
    obs = np.random.default_rng(0).normal(size=(500, obs_dim)).astype(np.float32)
    np.testing.assert_array_equal(policy.predict(obs)[0], model.predict(obs, deterministic=True)[0])
    again = run_module("cartpole_dqn.evaluate", "shared", "--episodes", "5", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"vs {threshold:g} (" in again.stdout  # scored against the spec threshold
