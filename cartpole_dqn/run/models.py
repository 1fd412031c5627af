"""Saved models: loading SB3 zips (trusted files only) and the weights-only export (safe to share).

SB3 ``.zip`` files unpickle Python objects, so loading one from a stranger can run their code.
An export is a torch ``state_dict`` (``policy.pt``, tensors only, read back with
``torch.load(weights_only=True)``) plus a JSON description of the network (``policy.json``);
:func:`load_policy` rebuilds the policy from those two files without unpickling anything.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.errors import ConfigError, UsageError, reason_of
from cartpole_dqn.run.artifacts import CONFIG, FINAL_MODEL, MODEL

FORMAT = "cartpole_dqn-policy-v1"
WEIGHTS, DESCRIPTION = "policy.pt", "policy.json"


def resolve_model_path(path: Path, which: str = "best") -> Path:
    """``path`` itself, or a run folder's ``model.zip`` (``which="best"``: the best checkpoint) or
    ``final_model.zip`` (``which="final"``: the weights when training stopped)."""
    if path.is_dir():
        path = path / (MODEL if which == "best" else FINAL_MODEL)
    if not path.exists():
        raise UsageError(f"model file not found: {path}", about="model")
    if not path.is_file():
        raise UsageError(f"model path is not a file: {path}", about="model")
    return path


def saved_algorithm(path: Path) -> str:
    """``"qrdqn"`` for a QR-DQN model zip (its saved data has ``n_quantiles``), else ``"dqn"``.

    Read from the zip's JSON ``data`` member, without unpickling anything.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return "dqn"  # the loader reports what is wrong with the file
    return "qrdqn" if isinstance(data, dict) and "n_quantiles" in data else "dqn"


def load_model(path: Path) -> Any:
    """Load an SB3 model zip saved by this package (DQN or QR-DQN, ours or stock); any unreadable
    file is a :class:`UsageError`."""
    from cartpole_dqn.dqn.agent import DQNAgent
    from cartpole_dqn.dqn.qrdqn import QRDQNAgent

    if not zipfile.is_zipfile(path):
        raise UsageError(f"not a model file (expected an SB3 .zip): {path}", about="model")
    cls = QRDQNAgent if saved_algorithm(path) == "qrdqn" else DQNAgent
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls.load(path, device="cpu")
    except Exception as exc:  # corrupt archive, missing members, unpickling failures
        reason = reason_of(exc)
        raise UsageError(f"cannot load model {path}: {reason}", about="model") from None


@contextmanager
def readable(what: str, path: Path) -> Iterator[None]:
    """Turn any failure to read ``path`` (a model zip, a pickled replay buffer: corrupt, truncated,
    from another version) into one :class:`UsageError` line naming the file."""
    try:
        yield
    except UsageError:
        raise
    except Exception as exc:
        reason = reason_of(exc)
        raise UsageError(f"cannot read {what} {path}: {reason}", about="run_dir") from None


def model_config(model_path: Path) -> RunConfig | None:
    """The run config saved beside a model, if there is one."""
    candidate = model_path.parent / CONFIG
    return load_config(candidate) if candidate.is_file() else None


def fits(policy: Any, env_id: str) -> bool:
    """Whether a policy's observation and action spaces match the env's."""
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        return bool(
            policy.observation_space.shape == env.observation_space.shape
            and policy.action_space.n == env.action_space.n  # type: ignore[attr-defined]
        )
    finally:
        env.close()


# --- weights-only export ---


def export_policy(model: Any, out: Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``model.policy`` as ``policy.pt`` + ``policy.json`` into the new folder ``out``."""
    import torch as th

    from cartpole_dqn.dqn.networks import activation_name

    policy = model.policy
    try:
        activation = activation_name(policy.activation_fn)
    except KeyError:
        raise UsageError(f"cannot export activation {policy.activation_fn.__name__}", about="model") from None
    quantiles = getattr(policy, "n_quantiles", None)
    dueling = type(policy).__name__ in ("DuelingDQNPolicy", "DuelingQRDQNPolicy")
    description = {
        "format": FORMAT,
        "algorithm": "dqn" if quantiles is None else "qrdqn",
        "policy": "DuelingMlpPolicy" if dueling else "MlpPolicy",
        **({} if quantiles is None else {"n_quantiles": int(quantiles)}),
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
        raise UsageError(f"{out} already exists; refusing to overwrite it", about="out") from None
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror}", about="out") from None
    state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    th.save(state, out / WEIGHTS)
    (out / DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")


class ExportedPolicy:
    """A rebuilt policy with SB3's ``predict`` signature (greedy actions only)."""

    def __init__(self, policy: Any, description: dict[str, Any]) -> None:
        self.policy = policy
        self.description = description
        self.observation_space = policy.observation_space
        self.action_space = policy.action_space

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        actions, _ = self.policy.predict(observation, deterministic=True)
        return actions, None

    def saved_config(self, folder: Path) -> RunConfig | None:
        """The env id and threshold recorded in the export, as a config."""
        if "env_id" not in self.description:
            return None
        values = {"env_id": self.description["env_id"], "threshold": self.description.get("threshold")}
        return RunConfig.from_mapping(values, source=str(folder))


def is_export(folder: Path) -> bool:
    return folder.is_dir() and (folder / DESCRIPTION).is_file()


def load_policy(folder: str | Path) -> ExportedPolicy:
    """Rebuild an exported policy with ``torch.load(weights_only=True)``: no pickle, no code from the file."""
    import gymnasium as gym
    import torch as th
    from sb3_contrib.qrdqn.policies import QRDQNPolicy
    from stable_baselines3.dqn.policies import DQNPolicy

    from cartpole_dqn.dqn.policies import DuelingDQNPolicy
    from cartpole_dqn.dqn.quantile_policies import DuelingQRDQNPolicy
    from cartpole_dqn.run.factory import policy_kwargs

    folder = Path(folder)
    try:
        description = json.loads((folder / DESCRIPTION).read_text())
    except FileNotFoundError:
        raise UsageError(f"not an exported policy (no {DESCRIPTION}): {folder}", about="model") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"corrupt {DESCRIPTION} in {folder}", about="model") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise UsageError(f"{folder / DESCRIPTION} is not a {FORMAT} description", about="model")
    try:
        algorithm = description.get("algorithm", "dqn")  # exports before QR-DQN have no algorithm
        network = RunConfig.from_mapping(
            {
                "algorithm": algorithm,
                **({"n_quantiles": description["n_quantiles"]} if algorithm == "qrdqn" else {}),
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
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise UsageError(f"{folder / DESCRIPTION} is incomplete or invalid: {exc}", about="model") from None
    dueling = network.policy == "DuelingMlpPolicy"
    if network.algorithm == "qrdqn":
        cls: type[Any] = DuelingQRDQNPolicy if dueling else QRDQNPolicy
    else:
        cls = DuelingDQNPolicy if dueling else DQNPolicy
    policy = cls(observation_space, action_space, lambda _: 0.0, **policy_kwargs(network))
    try:
        state = th.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
        policy.load_state_dict(state)
    except FileNotFoundError:
        raise UsageError(f"not an exported policy (no {WEIGHTS}): {folder}", about="model") from None
    except Exception as exc:
        raise UsageError(f"cannot load {folder / WEIGHTS}: {reason_of(exc)}", about="model") from None
    policy.set_training_mode(False)
    return ExportedPolicy(policy, description)
