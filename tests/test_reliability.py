"""Resume after SIGKILL, determinism, divergence, weights-only export (README: Reliability)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th

from tests.conftest import assert_one_line_error, run_module, sigkill_when, tree_digest
from tests.test_train_integration import scalars

pytestmark = pytest.mark.slow

TIMING_KEYS = {"wall_to_solve_s", "train_wall_s", "eval_time_s", "steps_per_s", "setup_s", "wall_s"}


def untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: untimed(v)
            for k, v in value.items()
            if k not in TIMING_KEYS
            and k not in {"run_name", "run_dir", "model_path", "config_path", "tensorboard_dir"}
        }
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def test_same_seed_and_config_give_identical_results_and_parameters(tmp_path: Path) -> None:
    args = [
        "--timesteps",
        "3000",
        "--learning-starts",
        "500",
        "--seed",
        "7",
        "--no-progress",
        "--no-early-stop",
    ]
    for name in ("a", "b"):
        result = run_module("cartpole_dqn.train", *args, "--run-name", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    runs = tmp_path / "experiments" / "runs"
    a, b = (json.loads((runs / n / "results.json").read_text()) for n in ("a", "b"))
    assert untimed(a) == untimed(b)
    assert len(a["evaluations"]) >= 3
    from cartpole_dqn import DQNAgent

    pa, pb = (DQNAgent.load(runs / n / "model.zip", device="cpu").policy.state_dict() for n in ("a", "b"))
    assert pa.keys() == pb.keys() and all(th.equal(pa[k], pb[k]) for k in pa)


def test_a_different_seed_gives_different_parameters(tmp_path: Path) -> None:
    """The control for the determinism test: the comparison can fail."""
    for seed in ("1", "2"):
        result = run_module(
            "cartpole_dqn.train",
            "--timesteps",
            "1500",
            "--learning-starts",
            "500",
            "--seed",
            seed,
            "--run-name",
            f"s{seed}",
            "--no-progress",
            "--no-early-stop",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
    from cartpole_dqn import DQNAgent

    runs = tmp_path / "experiments" / "runs"
    p1, p2 = (
        DQNAgent.load(runs / f"s{s}" / "model.zip", device="cpu").policy.state_dict() for s in ("1", "2")
    )
    assert not all(th.equal(p1[k], p2[k]) for k in p1)


@pytest.mark.parametrize("plugins", [[], ["--per"]], ids=["uniform", "per"])
def test_divergence_stops_with_one_line_and_exit_1_keeping_the_best_model(
    tmp_path: Path, plugins: list[str]
) -> None:
    result = run_module(
        "cartpole_dqn.train",
        *plugins,
        "--learning-rate",
        "1e30",
        "--timesteps",
        "5000",
        "--learning-starts",
        "500",
        "--eval-freq",
        "500",
        "--run-name",
        "boom",
        "--no-progress",
        cwd=tmp_path,
    )
    assert_one_line_error(result, "training diverged at step", "learning rate", status=1)
    run_dir = tmp_path / "experiments" / "runs" / "boom"
    assert (run_dir / "model.zip").is_file()  # the evaluation before the first update saved it
    assert not (run_dir / "results.json").exists()
    from cartpole_dqn import DQNAgent

    params = DQNAgent.load(run_dir / "model.zip", device="cpu").policy.state_dict()
    assert all(bool(th.isfinite(v).all()) for v in params.values())


def test_sigkill_after_a_checkpoint_then_resume_continues_the_same_run(tmp_path: Path) -> None:
    # Long enough that a fast CPU is still training when the kill lands (6,000 steps could end first).
    total = 14000
    args = [
        "--timesteps",
        str(total),
        "--checkpoint-every",
        "2000",
        "--no-early-stop",
        "--run-name",
        "crash",
        "--no-progress",
        "--seed",
        "3",
    ]
    state_file = tmp_path / "experiments" / "runs" / "crash" / "checkpoint" / "state.json"
    # Kill half a second after the first checkpoint: training (and logging) has gone on past it.
    sigkill_when("cartpole_dqn.train", args, tmp_path, lambda: state_file.exists() or None, settle=0.5)
    run_dir = tmp_path / "experiments" / "runs" / "crash"
    assert not (run_dir / "results.json").exists()
    checkpoint_step = json.loads(state_file.read_text())["num_timesteps"]
    assert 2000 <= checkpoint_step < total

    resumed = run_module("cartpole_dqn.train", "--resume", str(run_dir), "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir} at step {checkpoint_step:,}" in resumed.stdout
    results = json.loads((run_dir / "results.json").read_text())
    assert results["resumed"] is True and total <= results["total_steps"] < total + 64
    steps = [e["step"] for e in results["evaluations"]]
    assert steps == sorted(set(steps)) and steps[-1] >= total - 1000  # one continuous evaluation history
    logged = scalars(tmp_path / "tensorboard_logs" / "crash")
    for tag in ("eval/mean_reward", "rollout/exploration_rate"):
        tag_steps = [s for s, _ in logged[tag]]
        assert tag_steps == sorted(set(tag_steps)), f"{tag} steps repeat or go back after the resume"
        assert tag_steps[-1] >= total - 1000
    assert [d.name for d in (tmp_path / "tensorboard_logs").iterdir()] == ["crash"]

    again = run_module("cartpole_dqn.train", "--resume", str(run_dir), cwd=tmp_path)
    assert_one_line_error(again, "already finished")


def test_resume_refusals(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(
        run_module("cartpole_dqn.train", "--resume", "nope", cwd=tmp_path), "run folder not found"
    )
    assert_one_line_error(
        run_module("cartpole_dqn.train", "--resume", "empty", cwd=tmp_path), "no checkpoint"
    )
    assert_one_line_error(
        run_module("cartpole_dqn.train", "--resume", "empty", "--gamma", "0.9", cwd=tmp_path),
        "cannot be combined with config flags",
    )


def test_export_round_trip_gives_the_same_actions_without_pickle(tmp_path: Path) -> None:
    from cartpole_dqn import DQNAgent, load_policy

    result = run_module(
        "cartpole_dqn.train",
        "--timesteps",
        "2000",
        "--learning-starts",
        "500",
        "--run-name",
        "r",
        "--no-progress",
        "--no-early-stop",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "experiments" / "runs" / "r"
    exported = run_module("cartpole_dqn.export", str(run_dir), "--out", "shared", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    # Tensors only: torch's weights-only unpickler accepts the file.
    state = th.load(tmp_path / "shared" / "policy.pt", weights_only=True)
    assert all(isinstance(v, th.Tensor) for v in state.values())
    original = DQNAgent.load(run_dir / "model.zip", device="cpu")
    rebuilt = load_policy(tmp_path / "shared")
    obs = np.random.default_rng(0).normal(scale=1.0, size=(1000, 4)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.predict(obs)[0], original.predict(obs, deterministic=True)[0])

    scored = run_module("cartpole_dqn.evaluate", "shared", "--episodes", "20", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert "greedy return" in scored.stdout

    # The model card and the description carry the run's own score and the versions.
    results = json.loads((run_dir / "results.json").read_text())
    description = json.loads((tmp_path / "shared" / "policy.json").read_text())
    assert description["score"]["eval_mean"] == results["eval_mean"]
    assert description["score"]["final_eval_seed"] == results["final_eval_seed"]
    assert set(description["versions"]) >= {"torch", "stable-baselines3", "gymnasium"}
    card = (tmp_path / "shared" / "README.md").read_text()
    assert f"{results['eval_mean']:.1f} ± {results['eval_std']:.1f}" in card
    assert "load_policy(" in card and "total_timesteps: 2000" in card
    assert "RuntimeWarning" not in exported.stderr

    before = tree_digest(tmp_path / "shared")
    again = run_module("cartpole_dqn.export", str(run_dir), "--out", "shared", cwd=tmp_path)
    assert_one_line_error(again, "already exists")
    assert tree_digest(tmp_path / "shared") == before


def test_checkpoint_rng_state_round_trips_through_json() -> None:
    import random

    from stable_baselines3.common.env_util import make_vec_env

    from cartpole_dqn import DQNAgent
    from cartpole_dqn.run.checkpoints import restore_rng_state, rng_state

    model = DQNAgent("MlpPolicy", make_vec_env("CartPole-v1"), policy_kwargs={"net_arch": [8]})
    saved = json.loads(json.dumps(rng_state(model)))
    expected = (np.random.rand(), th.rand(1).item(), random.random(), int(model.action_space.sample()))
    np.random.seed(99)
    th.manual_seed(99)
    random.seed(99)
    model.action_space.seed(99)  # what SB3's load() does: reseed everything
    restore_rng_state(model, saved)
    assert (
        np.random.rand(),
        th.rand(1).item(),
        random.random(),
        int(model.action_space.sample()),
    ) == expected
