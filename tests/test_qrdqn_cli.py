"""QR-DQN through the real command lines: train, evaluate --gif, export, --resume, tune, benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import assert_one_line_error, run_in_process, run_module

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qr_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short run of the shipped qrdqn config with the dueling quantile network, to its budget."""
    work = tmp_path_factory.mktemp("qr")
    result = run_module(
        "cartpole_dqn.train", "--config", "qrdqn", "--total-timesteps", "2000", "--no-early-stop",
        "--checkpoint-every", "1000", "--policy", "DuelingMlpPolicy", "--run-name", "q", "--no-progress",
        cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return work


def test_a_qrdqn_run_records_its_algorithm_and_saves_a_quantile_agent(qr_run: Path) -> None:
    from cartpole_dqn.dqn.qrdqn import QRDQNAgent
    from cartpole_dqn.dqn.quantile_policies import DuelingQRDQNPolicy
    from cartpole_dqn.run.models import load_model

    run_dir = qr_run / "experiments" / "runs" / "q"
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["algorithm"] == "qrdqn" and written["n_quantiles"] >= 1
    model = load_model(run_dir / "model.zip")
    assert isinstance(model, QRDQNAgent) and isinstance(model.policy, DuelingQRDQNPolicy)
    assert model.n_quantiles == written["n_quantiles"]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["total_steps"] == 2000 and [e["step"] for e in results["evaluations"]] == [1000, 2000]


def test_evaluate_scores_and_records_a_qrdqn_model(qr_run: Path) -> None:
    run_dir = qr_run / "experiments" / "runs" / "q"
    gif = qr_run / "q.gif"
    result = run_module(
        "cartpole_dqn.evaluate", str(run_dir), "--episodes", "5", "--gif", str(gif), cwd=qr_run
    )
    assert result.returncode == 0, result.stderr
    assert "greedy return" in result.stdout
    from PIL import Image

    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames > 5


def test_export_of_a_qrdqn_run_acts_like_the_model(qr_run: Path) -> None:
    from cartpole_dqn import load_policy
    from cartpole_dqn.run.models import load_model

    run_dir = qr_run / "experiments" / "runs" / "q"
    exported = run_module("cartpole_dqn.export", str(run_dir), "--out", "shared", cwd=qr_run)
    assert exported.returncode == 0, exported.stderr
    description = json.loads((qr_run / "shared" / "policy.json").read_text())
    assert description["algorithm"] == "qrdqn" and description["policy"] == "DuelingMlpPolicy"
    rebuilt = load_policy(qr_run / "shared")
    original = load_model(run_dir / "model.zip")
    obs = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.predict(obs)[0], original.predict(obs, deterministic=True)[0])
    scored = run_module("cartpole_dqn.evaluate", "shared", "--episodes", "5", cwd=qr_run)
    assert scored.returncode == 0 and "greedy return" in scored.stdout, scored.stderr


def test_a_finished_qrdqn_run_continues_with_resume(qr_run: Path) -> None:
    run_dir = qr_run / "experiments" / "runs" / "q"
    args = ["--resume", str(run_dir), "--total-timesteps", "3000", "--no-progress"]
    more = run_module("cartpole_dqn.train", *args, cwd=qr_run)
    assert more.returncode == 0, more.stderr
    after = json.loads((run_dir / "results.json").read_text())
    assert after["total_steps"] == 3000 and after["resumed"] is True
    assert [e["step"] for e in after["evaluations"]] == [1000, 2000, 3000]


def test_the_stock_qrdqn_baseline_trains_and_evaluates(tmp_path: Path) -> None:
    from sb3_contrib import QRDQN

    from cartpole_dqn.run.models import load_model

    result = run_module(
        "cartpole_dqn.train", "--config", "qrdqn_zoo_baseline", "--total-timesteps", "1500",
        "--run-name", "z", "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    model = load_model(tmp_path / "experiments" / "runs" / "z" / "model.zip")
    assert isinstance(model, QRDQN) and model.n_quantiles == 10 and model.max_grad_norm is None
    assert type(model.policy).__name__ == "QRDQNPolicy"  # sb3-contrib's own


def test_a_qrdqn_sweep_searches_the_quantiles_and_writes_a_qrdqn_best_config(tmp_path: Path) -> None:
    result = run_module(
        "cartpole_dqn.tune", "--trials", "2", "--config", "qrdqn", "--space", "full", "--timesteps", "1000",
        "--seeds-per-trial", "1", "--workers", "1", "--study-name", "q", "--no-progress",
        "--validate-seeds", "0", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    best = yaml.safe_load((tmp_path / "experiments" / "tuning" / "q" / "best.yaml").read_text())
    assert best["algorithm"] == "qrdqn" and best["n_quantiles"] in (10, 25, 50, 100)
    rerun = run_module("cartpole_dqn.train", "--config", str(tmp_path / "experiments" / "tuning" / "q" /
                       "best.yaml"), "--total-timesteps", "500", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr


def test_benchmark_runs_qrdqn_beside_its_stock_baseline(tmp_path: Path) -> None:
    result = run_module(
        "cartpole_dqn.benchmark", "--configs", "qrdqn", "qrdqn_zoo_baseline", "--seeds", "1",
        "--timesteps", "1000", "--jobs", "2", "--bootstrap", "200", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (record_path,) = (tmp_path / "experiments" / "benchmarks").glob("benchmark-CartPole-v1-*.json")
    record = json.loads(record_path.read_text())
    assert set(record["summaries"]) == {"qrdqn", "qrdqn_zoo_baseline"}


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--n-quantiles", "10"], ["n_quantiles is only allowed with algorithm qrdqn"]),
        (["--algorithm", "qrdqn", "--n-quantiles", "0"], ["n_quantiles must be in [1, inf)"]),
        (
            ["--config", "qrdqn_zoo_baseline", "--double-q"],
            ["implementation sb3 (stock sb3-contrib QRDQN) has no double_q"],
        ),
        (["--config", "qrdqn_zoo_baseline", "--algorithm", "dqn"], ["n_quantiles is only allowed"]),
    ],
)
def test_bad_algorithm_combinations_are_one_line(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    result = run_in_process("cartpole_dqn.train", *args, "--no-progress", cwd=tmp_path)
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "experiments").exists()


def test_the_qrdqn_config_solves_cartpole_and_stays_solved(tmp_path: Path) -> None:
    """One real learning run of the shipped QR-DQN config (solved in 20 of 20 runs on the seeds it was
    chosen on, all within 13,000 of the 50,000-step budget)."""
    result = run_module(
        "cartpole_dqn.train",
        "--config",
        "qrdqn",
        "--seed",
        "0",
        "--run-name",
        "s",
        "--no-progress",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "experiments" / "runs" / "s" / "results.json").read_text())
    assert results["solved"] is True and results["steps_to_solve"] <= 50_000
    assert results["stays_solved"] is True and results["eval_mean"] >= 475
