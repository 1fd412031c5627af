"""Deploy without torch: a trained policy exported as ONNX, run in ONNX Runtime in a process where
torch is never imported, acts exactly as the torch policy on thousands of observations from real
episodes, and still solves; ``evaluate`` takes the export; a missing extra is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from tests.conftest import assert_one_line_error, run_in_process, run_module

pytestmark = pytest.mark.slow

Q_TOLERANCE = 1e-4  # float32 Q-values, torch against ONNX Runtime (same arithmetic, other kernels)

ORT_SCRIPT = """
import json, sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
obs = np.load(sys.argv[2])
action, q = session.run(["action", "q_values"], {"obs": obs})
np.savez(sys.argv[3], action=action, q=q)
inputs = [i.name for i in session.get_inputs()]
print(json.dumps({"torch_imported": "torch" in sys.modules, "inputs": inputs}))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three trained runs: the default (dueling DQN, trained to its solve), a plain MLP DQN and a
    QR-DQN (short runs: agreement needs a trained network, not a solved one)."""
    root = tmp_path_factory.mktemp("onnx")
    for name, args in (
        ("dueling", []),
        ("mlp", ["--policy", "MlpPolicy", "--total-timesteps", "1000"]),
        ("qr", ["--config", "qrdqn", "--total-timesteps", "1000"]),
    ):
        result = run_module("cartpole_dqn.train", *args, "--run-name", name, "--no-progress", cwd=root)
        assert result.returncode == 0, result.stderr
    return root


def real_observations(count: int, seed: int = 7) -> np.ndarray:
    """Observations from real CartPole episodes under a random policy (states a policy meets early)
    and with some pole angles beyond, so both actions are exercised."""
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    seen: list[np.ndarray] = []
    obs, _ = env.reset(seed=seed)
    while len(seen) < count:
        seen.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.asarray(seen, dtype=np.float32)


def torch_q_values(run_dir: Path, obs: np.ndarray) -> np.ndarray:
    from cartpole_dqn.run.models import load_model

    policy = load_model(run_dir / "model.zip").policy
    with th.no_grad():
        x = th.as_tensor(obs)
        if hasattr(policy, "quantile_net"):
            return policy.quantile_net(x).mean(dim=1).numpy()
        return policy.q_net(x).numpy()


@pytest.mark.parametrize("run", ["dueling", "mlp", "qr"])
def test_the_onnx_policy_acts_as_the_torch_policy_in_a_process_without_torch(runs: Path, run: str) -> None:
    out = runs / f"export-{run}"
    exported = run_module(
        "cartpole_dqn.export", f"experiments/runs/{run}", "--out", str(out), "--format", "onnx", cwd=runs
    )
    assert exported.returncode == 0, exported.stderr
    description = json.loads((out / "policy.json").read_text())
    assert description["format"] == "onnx" and description["opset"] == 17
    assert description["input"] == {"name": "obs", "dtype": "float32", "shape": ["batch", 4]}
    card = (out / "README.md").read_text()
    assert "opset 17" in card and "float32" in card and "onnxruntime" in card
    obs = real_observations(3000)
    np.save(runs / f"obs-{run}.npy", obs)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            ORT_SCRIPT,
            str(out / "policy.onnx"),
            str(runs / f"obs-{run}.npy"),
            str(runs / f"ort-{run}.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.splitlines()[-1]) == {"torch_imported": False, "inputs": ["obs"]}
    ort_out = np.load(runs / f"ort-{run}.npz")
    q = torch_q_values(runs / "experiments" / "runs" / run, obs)
    assert ort_out["q"].shape == q.shape == (3000, 2)
    assert np.array_equal(ort_out["action"], q.argmax(axis=1)), "actions differ"
    assert float(np.abs(ort_out["q"] - q).max()) <= Q_TOLERANCE


def test_evaluate_scores_the_onnx_export_and_it_solves(runs: Path) -> None:
    out = runs / "export-eval"
    exported = run_module(
        "cartpole_dqn.export", "experiments/runs/dueling", "--out", str(out), "--format", "onnx", cwd=runs
    )
    assert exported.returncode == 0, exported.stderr
    scored = run_module("cartpole_dqn.evaluate", str(out), "--episodes", "100", cwd=runs)
    assert scored.returncode == 0, scored.stderr
    assert "over 100 episodes" in scored.stdout and "PASS" in scored.stdout, scored.stdout
    bare = run_module("cartpole_dqn.evaluate", str(out / "policy.onnx"), "--episodes", "3", cwd=runs)
    assert bare.returncode == 0 and "CartPole-v1" in bare.stdout, bare.stderr


def test_a_missing_onnx_extra_is_one_line_naming_it(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = runs / "export-missing"
    exported = run_in_process(
        "cartpole_dqn.export", "experiments/runs/mlp", "--out", str(graph), "--format", "onnx", cwd=runs
    )
    assert exported.returncode == 0, exported.stderr
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    out = runs / "never"
    result = run_in_process(
        "cartpole_dqn.export", "experiments/runs/mlp", "--out", str(out), "--format", "onnx", cwd=runs
    )
    assert_one_line_error(result, "needs the onnx extra", 'pip install -c constraints.txt -e ".[onnx]"')
    assert not out.exists()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = run_in_process("cartpole_dqn.evaluate", str(graph), cwd=runs)
    assert_one_line_error(result, "running an ONNX policy needs the onnx extra")
