"""Resume keeps the replay data and the saved model consistent (in-process crashes, real runs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.save_util import load_from_pkl

from cartpole_dqn.config import RunConfig
from cartpole_dqn.dqn.agent import DQNAgent
from cartpole_dqn.run.artifacts import RunPaths, allocate_run
from cartpole_dqn.run.envs import EVAL_SEED_OFFSET, env_info_of
from cartpole_dqn.run.evaluation import evaluate_greedy
from cartpole_dqn.run.models import load_model
from cartpole_dqn.run.runner import resume_run, train_new_run


class SimulatedCrash(Exception):
    pass


class CrashWhen(BaseCallback):
    """Raise (as a kill would stop the process) at the first env step where ``predicate`` holds."""

    def __init__(self, predicate: Callable[[int], bool]) -> None:
        super().__init__()
        self.predicate = predicate

    def _on_step(self) -> bool:
        if self.predicate(self.num_timesteps):
            raise SimulatedCrash(self.num_timesteps)
        return True


CONFIG = RunConfig.from_mapping(
    {
        "n_envs": 2,
        "n_steps": 3,
        "net_arch": [32],
        "total_timesteps": 4000,
        "learning_starts": 200,
        "train_freq": 32,
        "gradient_steps": 8,
        "eval_freq": 500,
        "eval_episodes": 20,
        "checkpoint_every": 1000,
        "early_stop": False,
        "threshold": 10_000.0,  # never solved: the run goes on to its budget
        "seed": 11,
    }
)


def checkpoint_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "checkpoint" / "state.json"
    return json.loads(path.read_text()) if path.is_file() else None


def crash_after_checkpoint(run_dir: Path, newer_than: int) -> CrashWhen:
    """Crash 100 steps after a checkpoint newer than step ``newer_than`` has been written."""

    def written(step: int) -> bool:
        state = checkpoint_state(run_dir)
        return (
            state is not None and state["num_timesteps"] > newer_than and step >= state["num_timesteps"] + 100
        )

    return CrashWhen(written)


def perfect_controller_model(path: Path) -> None:
    """A different model in place of model.zip (what a later best save of the killed session leaves)."""
    agent = DQNAgent("MlpPolicy", make_vec_env("CartPole-v1"), policy_kwargs={"net_arch": []})
    (layer,) = [m for m in agent.q_net.modules() if isinstance(m, th.nn.Linear)]
    with th.no_grad():
        layer.weight.copy_(th.tensor([[0.0, 0.0, -1.0, -0.2], [0.0, 0.0, 1.0, 0.2]]))
        layer.bias.zero_()
    agent.save(path)


@pytest.mark.parametrize("algorithm", ["dqn", "qrdqn"])
def test_resume_keeps_the_replay_data_whole_and_the_saved_model_consistent(
    tmp_path: Path, algorithm: str
) -> None:
    config = CONFIG if algorithm == "dqn" else CONFIG.replace(algorithm="qrdqn", n_quantiles=5)
    env_info = env_info_of(config)
    paths = allocate_run(tmp_path / "runs", tmp_path / "tb", "r", "r")
    run_dir = paths.run_dir
    n_envs = config.n_envs

    with pytest.raises(SimulatedCrash):
        train_new_run(config, env_info, paths, callback=crash_after_checkpoint(run_dir, 0))
    first = checkpoint_state(run_dir)
    assert first is not None
    seam_step = first["num_timesteps"]
    at_seam = load_from_pkl(run_dir / "checkpoint" / "replay_buffer.pkl")
    # Every transition counted in num_timesteps is in the checkpointed buffer (none lost to the save).
    assert at_seam.pos * n_envs == seam_step

    # The killed session saved a newer best model after the checkpoint; a resume must not keep it,
    # since the checkpointed history (best_step) describes the model saved before the checkpoint.
    perfect_controller_model(paths.model)
    resume = RunPaths(paths.name, run_dir, paths.tensorboard_dir)
    with pytest.raises(SimulatedCrash):  # killed again at once, before any evaluation
        resume_run(
            config,
            env_info,
            resume,
            run_dir / "checkpoint",
            callback=CrashWhen(lambda step: True),
        )
    history = first["solve"]["history"]
    best = max(history, key=lambda r: (r["deciding"], r["mean"]))
    on_disk = load_model(paths.model)
    # Re-run that evaluation: same episodes, same start states; a stopped one reported its first ones.
    rescored = evaluate_greedy(
        on_disk.policy, config.env_id, config.eval_episodes, config.seed + EVAL_SEED_OFFSET, 500
    )
    kept = rescored.returns[: best["episodes"]]
    assert float(np.mean(kept)) == pytest.approx(best["mean"]), (
        "model.zip is not the model best_step describes"
    )

    with pytest.raises(SimulatedCrash):
        resume_run(
            config,
            env_info,
            resume,
            run_dir / "checkpoint",
            callback=crash_after_checkpoint(run_dir, seam_step),
        )
    second = checkpoint_state(run_dir)
    assert second is not None and second["num_timesteps"] > seam_step
    buffer = load_from_pkl(run_dir / "checkpoint" / "replay_buffer.pkl")
    assert buffer.pos * n_envs == second["num_timesteps"]  # rows stored == num_timesteps / n_envs
    seam = seam_step // n_envs  # the first row written after the resume
    # The episode cut by the resume ends at the seam: no n-step window runs into the new episode.
    assert np.all((buffer.dones[seam - 1] > 0) | (buffer.timeouts[seam - 1] > 0))
    gamma = config.gamma
    for row in range(seam - config.n_steps + 1, seam):
        windows = buffer._get_samples(np.full(256, row))  # random env per sample: all of them drawn
        # A window starting at ``row`` spans at most the rows up to seam - 1: at most seam - row steps.
        assert windows.discounts.min().item() >= gamma ** (seam - row) - 1e-6
    # The resumed env does not replay the run's first start states.
    assert not np.array_equal(buffer.observations[seam], buffer.observations[0])


@pytest.mark.slow
def test_ctrl_c_checkpoints_the_current_step_and_prints_the_resume_command(workdir: Path) -> None:
    """SIGINT mid-training: a checkpoint at the step reached (not the last periodic one: periodic
    checkpoints are off here), exit 130, one line naming the exact --resume command, which then runs."""
    import shlex
    import signal
    import subprocess
    import sys
    import time

    run_dir = workdir / "experiments" / "runs" / "ctrlc"
    argv = [
        sys.executable, "-m", "cartpole_dqn.train", "--run-name", "ctrlc", "--total-timesteps", "16000",
        "--no-early-stop", "--checkpoint-every", "0", "--no-progress",
    ]  # fmt: skip
    process = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        tb = workdir / "tensorboard_logs" / "ctrlc"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(tb.glob("events.*")) and process.poll() is None:
            time.sleep(0.1)
        time.sleep(0.5)  # training, mid-rollout (16,000 steps: a fast CPU has not finished)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "interrupted: checkpoint saved at step" in lines[0]
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    step = state["num_timesteps"]
    assert 0 < step < 16000 and f"step {step:,};" in lines[0]
    buffer = load_from_pkl(run_dir / "checkpoint" / "replay_buffer.pkl")
    assert buffer.size() == step  # every counted step is in the buffer: nothing lost, nothing extra
    assert not (run_dir / "results.json").exists()

    command = lines[0].split("continue with: ", 1)[1]
    assert (
        command == f"python -m cartpole_dqn.train --resume {shlex.quote(str(run_dir.relative_to(workdir)))}"
    )
    resumed = subprocess.run(
        [sys.executable, *shlex.split(command)[1:], "--no-progress"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["resumed"] is True and results["total_steps"] >= 16000


@pytest.mark.slow
def test_a_finished_run_continues_for_more_steps_keeping_what_it_wrote(workdir: Path) -> None:
    """`--resume RUN --total-timesteps N` on a finished run (rl-baselines3-zoo's `-i`): its final
    weights train on to N with a new buffer; its evaluation history continues; the earlier results
    and final model are kept; other config flags and a budget that is not larger are refused."""
    from tests.conftest import assert_one_line_error, run_module

    common = ["--no-progress"]
    first = run_module(
        "cartpole_dqn.train", "--run-name", "c", "--total-timesteps", "2000", "--no-early-stop", *common,
        cwd=workdir,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    run_dir = workdir / "experiments" / "runs" / "c"
    before = json.loads((run_dir / "results.json").read_text())
    final_before = (run_dir / "final_model.zip").read_bytes()

    refused = run_module("cartpole_dqn.train", "--resume", str(run_dir), *common, cwd=workdir)
    assert_one_line_error(refused, "already finished at step 2,000", "--total-timesteps above 2,000")
    extra = ["--total-timesteps", "3000", "--gamma", "0.9"]
    refused = run_module("cartpole_dqn.train", "--resume", str(run_dir), *extra, *common, cwd=workdir)
    assert_one_line_error(refused, "cannot be combined with config flags (--gamma)")
    assert json.loads((run_dir / "results.json").read_text()) == before

    more = run_module(
        "cartpole_dqn.train", "--resume", str(run_dir), "--total-timesteps", "4000", *common, cwd=workdir
    )
    assert more.returncode == 0, more.stderr
    after = json.loads((run_dir / "results.json").read_text())
    assert after["total_steps"] == 4000 and after["resumed"] is True
    assert [e["step"] for e in after["evaluations"]] == [1000, 2000, 3000, 4000]
    assert after["evaluations"][:2] == before["evaluations"]
    assert json.loads((run_dir / "results-2000.json").read_text()) == before
    assert (run_dir / "final_model-2000.zip").read_bytes() == final_before
    assert (run_dir / "final_model.zip").read_bytes() != final_before
