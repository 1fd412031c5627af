"""The greedy policy as an ONNX graph, and that graph as a policy: deploy without torch.

:func:`export_onnx` writes ``policy.onnx``: observations in (``obs``, float32, shape
``(batch, *observation_shape)``, any batch size), the greedy actions out (``action``, int64,
``(batch,)``) and the Q-values they maximize (``q_values``, float32, ``(batch, n_actions)``; for
QR-DQN the mean over quantiles, as sb3-contrib's policy acts). The graph holds the whole network,
SB3's feature extraction included: for the float Box observations it supports that is a flatten,
so raw observations go in as the env returns them. :class:`OnnxPolicy` runs such a file in ONNX
Runtime, without torch, behind SB3's ``predict`` signature (what ``evaluate`` uses).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from cartpole_dqn.errors import UsageError, reason_of

ONNX_FILE = "policy.onnx"
OPSET = 17  # ONNX opset of the exported graph (ONNX Runtime 1.14 and later run it)
EXTRA = 'pip install -c constraints.txt -e ".[onnx]"'


def require(module: str, what: str) -> None:
    """One line naming the ``onnx`` extra when ``module`` cannot be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise UsageError(
            f"{what} needs the onnx extra ({module} is not installed): {EXTRA}", about="model"
        ) from None


def export_onnx(model: Any, path: Path) -> dict[str, Any]:
    """Write ``model``'s greedy policy (an SB3 DQN or sb3-contrib QR-DQN) as an ONNX graph at
    ``path``; return its description (format, opset, inputs, outputs, preprocessing)."""
    require("onnx", "ONNX export")
    import warnings

    import torch as th
    from gymnasium import spaces
    from sb3_contrib.qrdqn.policies import QRDQNPolicy

    policy = model.policy
    if not isinstance(model.observation_space, spaces.Box) or model.observation_space.dtype != np.float32:
        raise UsageError("ONNX export supports float32 Box observations only", about="model")
    policy.set_training_mode(False)
    quantile = isinstance(policy, QRDQNPolicy)
    network = policy.quantile_net if quantile else policy.q_net

    class Greedy(th.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
            values = self.network(obs)
            q = values.mean(dim=1) if quantile else values
            return q.argmax(dim=1), q

    shape = tuple(model.observation_space.shape)
    example = th.zeros((2, *shape), dtype=th.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        th.onnx.export(
            Greedy().eval(),
            (example,),
            str(path),
            input_names=["obs"],
            output_names=["action", "q_values"],
            dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}, "q_values": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return {
        "format": "onnx",
        "file": path.name,
        "opset": OPSET,
        "algorithm": "qrdqn" if quantile else "dqn",
        "input": {"name": "obs", "dtype": "float32", "shape": ["batch", *shape]},
        "outputs": {
            "action": {"dtype": "int64", "shape": ["batch"]},
            "q_values": {"dtype": "float32", "shape": ["batch", int(model.action_space.n)]},
        },
        "preprocessing": "none beyond the graph: raw float32 observations in (SB3's flatten is inside)",
        "observation_shape": list(shape),
        "n_actions": int(model.action_space.n),
    }


class OnnxPolicy:
    """An exported ``policy.onnx`` run in ONNX Runtime, with SB3's ``predict`` signature."""

    def __init__(self, path: Path) -> None:
        require("onnxruntime", "running an ONNX policy")
        import onnxruntime as ort
        from gymnasium import spaces

        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # not a file ONNX Runtime can read
            raise UsageError(f"cannot load ONNX model {path}: {reason_of(exc)}", about="model") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != ["obs"] or [o.name for o in outputs][:1] != ["action"]:
            raise UsageError(f"{path} is not a cartpole_dqn policy export (obs -> action)", about="model")
        shape = tuple(int(d) for d in inputs[0].shape[1:])
        n_actions = int(outputs[1].shape[1]) if len(outputs) > 1 else 0
        self.observation_space = spaces.Box(-np.inf, np.inf, shape, np.float32)
        self.action_space = spaces.Discrete(max(n_actions, 1))
        self.path = path

    def q_values(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(["q_values"], {"obs": self._batch(observation)})[0])

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        """Greedy actions (the graph is greedy: ``deterministic`` is always true here)."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.shape == self.observation_space.shape
        actions = np.asarray(self.session.run(["action"], {"obs": self._batch(obs)})[0])
        return (actions[0] if single else actions), None

    def _batch(self, observation: Any) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float32)
        return obs[None] if obs.shape == self.observation_space.shape else obs


def onnx_file(path: Path) -> Path | None:
    """The ``.onnx`` file ``path`` names: itself, or an export folder's ``policy.onnx``."""
    if path.suffix == ".onnx" and path.is_file():
        return path
    candidate = path / ONNX_FILE
    return candidate if path.is_dir() and candidate.is_file() else None


def saved_description(onnx_path: Path) -> dict[str, Any]:
    """The export's ``policy.json`` beside the graph, if any."""
    try:
        loaded = json.loads((onnx_path.parent / "policy.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
