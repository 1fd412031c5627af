"""Weights-only model sharing: ``python -m cartpole_dqn.export RUN_DIR --out DIR`` and :func:`load_policy`.

SB3 ``.zip`` files unpickle Python objects, so loading one from a stranger can run their code.
An export is a torch ``state_dict`` (``policy.pt``, tensors only, read back with
``torch.load(weights_only=True)``) plus a JSON description of the network (``policy.json``);
:func:`load_policy` rebuilds the policy from those two files without unpickling anything.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cartpole_dqn.cli import OneLineParser, run_cli
from cartpole_dqn.errors import UsageError

PROG = "python -m cartpole_dqn.export"
FORMAT = "cartpole_dqn-policy-v1"
WEIGHTS, DESCRIPTION = "policy.pt", "policy.json"


def export_policy(model: Any, out: Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``model.policy`` as ``policy.pt`` + ``policy.json`` into the new folder ``out``."""
    import torch as th

    from cartpole_dqn.networks import activation_name

    policy = model.policy
    try:
        activation = activation_name(policy.activation_fn)
    except KeyError:
        raise UsageError(f"cannot export activation {policy.activation_fn.__name__}") from None
    description = {
        "format": FORMAT,
        "policy": "DuelingMlpPolicy" if type(policy).__name__ == "DuelingDQNPolicy" else "MlpPolicy",
        "net_arch": list(policy.net_arch),
        "stream_arch": list(getattr(policy, "stream_arch", [])),
        "activation": activation,
        "observation_shape": list(model.observation_space.shape),
        "observation_dtype": str(model.observation_space.dtype),
        "n_actions": int(model.action_space.n),
        **(extra or {}),
    }
    try:
        out.mkdir(parents=True)
    except FileExistsError:
        raise UsageError(f"--out {out} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise UsageError(f"cannot create --out {out}: {exc.strerror}") from None
    state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    th.save(state, out / WEIGHTS)
    (out / DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")


class ExportedPolicy:
    """A rebuilt policy with SB3's ``predict`` signature (greedy actions only)."""

    def __init__(self, policy: Any, description: dict[str, Any]) -> None:
        self.policy = policy
        self.description = description

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        actions, _ = self.policy.predict(observation, deterministic=True)
        return actions, None


def load_policy(folder: str | Path) -> ExportedPolicy:
    """Rebuild an exported policy with ``torch.load(weights_only=True)``: no pickle, no code from the file."""
    import gymnasium as gym
    import torch as th
    from stable_baselines3.dqn.policies import DQNPolicy

    from cartpole_dqn.config import RunConfig
    from cartpole_dqn.policies import DuelingDQNPolicy

    folder = Path(folder)
    try:
        description = json.loads((folder / DESCRIPTION).read_text())
    except FileNotFoundError:
        raise UsageError(f"not an exported policy (no {DESCRIPTION}): {folder}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"corrupt {DESCRIPTION} in {folder}") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise UsageError(f"{folder / DESCRIPTION} is not a {FORMAT} description")
    try:
        network = RunConfig.from_mapping(
            {
                "policy": description["policy"],
                "net_arch": description["net_arch"],
                "activation": description["activation"],
                "dueling_stream_arch": description["stream_arch"]
                if description["policy"] == "DuelingMlpPolicy"
                else [],
            },
            source=str(folder / DESCRIPTION),
        )
        shape = tuple(int(x) for x in description["observation_shape"])
        observation_space = gym.spaces.Box(-np.inf, np.inf, shape, np.dtype(description["observation_dtype"]))
        action_space = gym.spaces.Discrete(int(description["n_actions"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{folder / DESCRIPTION} is incomplete or invalid: {exc}") from None
    kwargs = network.policy_kwargs()
    cls = DuelingDQNPolicy if network.policy == "DuelingMlpPolicy" else DQNPolicy
    policy = cls(observation_space, action_space, lambda _: 0.0, **kwargs)
    try:
        state = th.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
        policy.load_state_dict(state)
    except FileNotFoundError:
        raise UsageError(f"not an exported policy (no {WEIGHTS}): {folder}") from None
    except Exception as exc:
        raise UsageError(f"cannot load {folder / WEIGHTS}: {str(exc).splitlines()[0]}") from None
    policy.set_training_mode(False)
    return ExportedPolicy(policy, description)


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description="Export a run's policy as weights + JSON (no pickle).")
    parser.add_argument("run", type=Path, help="run folder (with model.zip) or a model.zip")
    parser.add_argument("--out", type=Path, required=True, help="new folder for policy.pt + policy.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cartpole_dqn.evaluate import load_model, model_config, resolve_model_path

    args = build_parser().parse_args(argv)
    if args.out.exists():
        raise UsageError(f"--out {args.out} already exists; refusing to overwrite it")
    model_path = resolve_model_path(args.run)
    model = load_model(model_path)
    saved = model_config(model_path)
    extra: dict[str, Any] = {"source": str(model_path)}
    if saved is not None:
        extra.update(env_id=saved.env_id, threshold=saved.threshold)
    export_policy(model, args.out, extra)
    print(f"exported {model_path} -> {args.out / WEIGHTS}, {args.out / DESCRIPTION}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
