"""Artifacts written by 0.1.0 (the flat layout) still load, evaluate and resume (tests/fixtures/v0.1.0)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, run_module

FIXTURES = REPO / "tests" / "fixtures" / "v0.1.0"


@pytest.fixture
def old_runs(tmp_path: Path) -> Path:
    for name in ("finished", "killed"):
        shutil.copytree(FIXTURES / name, tmp_path / "experiments" / "runs" / name)
    return tmp_path / "experiments" / "runs"


def test_an_old_model_loads_with_its_plugins_and_scores_as_it_did(old_runs: Path) -> None:
    from cartpole_dqn import DQNAgent, DuelingDQNPolicy, PrioritizedReplayBuffer
    from cartpole_dqn.run.evaluation import evaluate_greedy

    model = DQNAgent.load(old_runs / "finished" / "model.zip", device="cpu")
    assert isinstance(model.policy, DuelingDQNPolicy) and model.double_q is True
    assert model.replay_buffer_class is PrioritizedReplayBuffer
    old = json.loads((old_runs / "finished" / "results.json").read_text())
    again = evaluate_greedy(model.policy, "CartPole-v1", old["eval_episodes"], old["final_eval_seed"], 500)
    assert again.mean == old["eval_mean"]  # the same greedy returns, episode for episode


def test_an_old_checkpoint_buffer_unpickles_with_its_sum_tree(old_runs: Path) -> None:
    from stable_baselines3.common.save_util import load_from_pkl

    from cartpole_dqn import PrioritizedReplayBuffer, SumTree

    buffer = load_from_pkl(old_runs / "killed" / "checkpoint" / "replay_buffer.pkl")
    assert isinstance(buffer, PrioritizedReplayBuffer) and isinstance(buffer.tree, SumTree)
    assert buffer.tree.total == pytest.approx(buffer.tree.values().sum())
    assert buffer.sample(32).weights.shape == (32, 1)


@pytest.mark.slow
def test_old_run_folders_evaluate_and_resume_through_the_clis(old_runs: Path) -> None:
    work = old_runs.parents[1]
    scored = run_module("cartpole_dqn.evaluate", "experiments/runs/finished", "--episodes", "20", cwd=work)
    assert scored.returncode == 0, scored.stderr
    assert "greedy return" in scored.stdout and "FAIL" in scored.stdout  # an untrained 1,500-step model

    resumed = run_module(
        "cartpole_dqn.train", "--resume", "experiments/runs/killed", "--no-progress", cwd=work
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming experiments/runs/killed at step 1,000 of 4,000" in resumed.stdout
    results = json.loads((old_runs / "killed" / "results.json").read_text())
    assert results["resumed"] is True and results["total_steps"] == 4000
    steps = [e["step"] for e in results["evaluations"]]
    assert steps[0] == 1000 and steps == sorted(set(steps)) and steps[-1] == 4000  # one continuous history
    # The recorded TensorBoard folder belonged to the machine that wrote the fixture: a fresh one here.
    assert (work / "tensorboard_logs" / "killed").is_dir()
    assert not (old_runs / "killed" / "checkpoint").exists()
    assert np.isfinite(results["eval_mean"])


def test_a_0_2_0_model_zip_loads_with_flat_adam_at_its_new_path() -> None:
    """0.2.0 zips pickle ``cartpole_dqn.dqn.optim.FlatAdam`` in their policy kwargs; 0.3.0 moved it to
    ``cartpole_dqn.dqn.fast.optim`` (tests/fixtures/v0.2.0/dqn_model.zip, saved by 0.2.0)."""
    import warnings

    from cartpole_dqn import DQNAgent
    from cartpole_dqn.dqn.fast.optim import FlatAdam

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = DQNAgent.load(REPO / "tests" / "fixtures" / "v0.2.0" / "dqn_model.zip", device="cpu")
    assert isinstance(agent.policy.optimizer, FlatAdam) and agent.fast and agent.torch_threads == 1
    action, _ = agent.predict(np.zeros(4, dtype=np.float32), deterministic=True)
    assert int(action) in (0, 1)
