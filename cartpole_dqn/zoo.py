"""rl-baselines3-zoo hyperparameter files (``hyperparams/dqn.yml``, ``qrdqn.yml``) as run configs.

A zoo file holds one block per env id (plus ``atari`` and ``default``). ``load_config`` reads such
a file when it is given one: the block of the requested env, its keys translated to ours, and the
keys the block leaves out taken from the algorithm's own defaults (SB3 ``DQN``'s, or with
``--algorithm qrdqn`` sb3-contrib ``QRDQN``'s), as the zoo does (not from our default config, whose
plug-ins a zoo user did not ask for). ``policy_kwargs`` strings such as
``"dict(net_arch=[256, 256])"`` are parsed as literals with ``ast`` (never ``eval``). What we do not
support (Atari wrappers, frame stacking, normalization, schedules, other policies) is refused in one
line. No torch here: the CLIs answer instantly.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Mapping
from typing import Any

from cartpole_dqn.errors import ConfigError

ENV_ID = re.compile(r"^[\w.:/-]+-v\d+$")

# stable_baselines3.DQN's constructor defaults (2.x), in our keys, and our non-plug-in settings.
SB3_DQN_DEFAULTS: dict[str, Any] = {
    "policy": "MlpPolicy",
    "net_arch": [64, 64],
    "learning_rate": 1e-4,
    "buffer_size": 1_000_000,
    "learning_starts": 100,
    "batch_size": 32,
    "tau": 1.0,
    "gamma": 0.99,
    "train_freq": 4,
    "gradient_steps": 1,
    "target_update_interval": 10_000,
    "exploration_fraction": 0.1,
    "exploration_initial_eps": 1.0,
    "exploration_final_eps": 0.05,
    "max_grad_norm": 10.0,
    "n_steps": 1,
    "double_q": False,
    "prioritized_replay": False,
    "n_envs": 1,
}

# sb3_contrib.QRDQN's constructor and policy defaults (2.x), in our keys.
SB3_QRDQN_DEFAULTS: dict[str, Any] = {
    **SB3_DQN_DEFAULTS,
    "algorithm": "qrdqn",
    "n_quantiles": None,  # the policy's own default (200), as RunConfig reads None
    "learning_rate": 5e-5,
    "exploration_fraction": 0.005,
    "exploration_final_eps": 0.01,
    "max_grad_norm": None,
}

SAME_KEYS = (
    "learning_rate",
    "batch_size",
    "buffer_size",
    "learning_starts",
    "gamma",
    "tau",
    "target_update_interval",
    "exploration_fraction",
    "exploration_initial_eps",
    "exploration_final_eps",
    "max_grad_norm",
    "n_envs",
    "n_steps",
)
UNSUPPORTED = {
    "env_wrapper": "env wrappers (e.g. Atari's)",
    "frame_stack": "frame stacking",
    "normalize": "observation/reward normalization",
    "vec_env_wrapper": "VecEnv wrappers",
    "callback": "zoo callbacks",
    "env_kwargs": "env kwargs",
    "replay_buffer_class": "zoo replay buffer classes (use prioritized_replay)",
    "replay_buffer_kwargs": "replay buffer kwargs",
}


def is_zoo_file(data: Mapping[Any, Any]) -> bool:
    """A zoo hyperparameter file: every value is a block (a mapping), one of them keyed by an env id."""
    return (
        bool(data)
        and all(isinstance(v, dict) for v in data.values())
        and any(isinstance(k, str) and ENV_ID.match(k) for k in data)
    )


def zoo_block(
    data: Mapping[str, Any], env_id: str | None, source: str, algorithm: str = "dqn"
) -> dict[str, Any]:
    """Our config values for ``env_id``'s block of a zoo file of ``algorithm`` (dqn or qrdqn)."""
    envs = sorted(k for k in data if isinstance(k, str) and ENV_ID.match(k))
    if env_id is None:
        raise ConfigError(
            f"{source} is an rl-baselines3-zoo file with one block per env: choose one with --env-id "
            f"({', '.join(envs)})"
        )
    if env_id not in data and "atari" in data and ("NoFrameskip" in env_id or env_id.startswith("ALE/")):
        raise ConfigError(
            f"{source}: Atari envs (the zoo's 'atari' block: AtariWrapper, frame stacking, CnnPolicy) "
            "are not supported by cartpole_dqn"
        )
    block_id = env_id if env_id in data else older_version(env_id, envs)
    if block_id is None:
        raise ConfigError(f"{source} has no block for {env_id}; it has: {', '.join(envs)}")
    if block_id != env_id:
        # Older zoo files tune e.g. LunarLander-v2, which Gymnasium 1.x replaced by -v3 (same task).
        print(
            f"note: {source} has no {env_id} block; using its {block_id} block (an earlier version of "
            "the same env)",
            file=sys.stderr,
        )
    return translate(data[block_id], env_id, f"{source} [{block_id}]", algorithm)


def older_version(env_id: str, envs: list[str]) -> str | None:
    """The newest block of an earlier version of ``env_id`` (``LunarLander-v2`` for ``-v3``), if any."""
    match = re.match(r"^(.*)-v(\d+)$", env_id)
    if match is None:
        return None
    name, version = match.group(1), int(match.group(2))
    older = [(int(m.group(1)), e) for e in envs if (m := re.match(rf"^{re.escape(name)}-v(\d+)$", e))]
    older = [(v, e) for v, e in older if v < version]
    return max(older)[1] if older else None


def flat_policy_kwargs(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A flat config with SB3's ``policy_kwargs`` (a mapping, or the zoo's ``"dict(...)"`` string)
    read into our keys: ``net_arch``, ``n_quantiles`` (qrdqn) and, for the dueling policy,
    ``stream_arch`` as ``dueling_stream_arch``."""
    out = dict(data)
    value = out.pop("policy_kwargs")
    algorithm = str(out.get("algorithm", "dqn"))
    if isinstance(value, dict) and "stream_arch" in value:
        value = dict(value)
        out_stream = value.pop("stream_arch")
        if "dueling_stream_arch" in out:
            raise ConfigError(f"{source}: stream_arch is given twice (dueling_stream_arch and policy_kwargs)")
        out["dueling_stream_arch"] = out_stream
    for key, item in _policy_kwargs(value, source, algorithm).items():
        if key in out:
            raise ConfigError(f"{source}: {key} is given twice (as {key} and in policy_kwargs)")
        out[key] = item
    return out


def translate(block: Mapping[str, Any], env_id: str, where: str, algorithm: str = "dqn") -> dict[str, Any]:
    defaults = SB3_QRDQN_DEFAULTS if algorithm == "qrdqn" else SB3_DQN_DEFAULTS
    out: dict[str, Any] = {**defaults, "env_id": env_id, "implementation": "cartpole_dqn"}
    for key, value in block.items():
        if key in UNSUPPORTED:
            raise ConfigError(f"{where}: '{key}' ({UNSUPPORTED[key]}) is not supported by cartpole_dqn")
        if key in SAME_KEYS:
            if isinstance(value, str) and value.startswith("lin_"):
                raise ConfigError(
                    f"{where}: {key} '{value}' is a linear schedule; cartpole_dqn takes a constant {key}"
                )
            out[key] = value
        elif key == "n_timesteps":
            out["total_timesteps"] = int(float(value))
        elif key == "policy":
            if value != "MlpPolicy":
                raise ConfigError(
                    f"{where}: policy '{value}' is not supported (MlpPolicy only; dueling: "
                    "policy DuelingMlpPolicy in a cartpole_dqn config)"
                )
            out["policy"] = value
        elif key == "train_freq":
            out["train_freq"] = _train_freq(value, where)
        elif key == "gradient_steps":
            out["gradient_steps"] = value
        elif key == "policy_kwargs":
            out.update(_policy_kwargs(value, where, algorithm))
        elif key == "optimize_memory_usage":
            if value:
                raise ConfigError(f"{where}: optimize_memory_usage: true is not supported")
        else:
            raise ConfigError(f"{where}: zoo key '{key}' is not supported by cartpole_dqn")
    if out["gradient_steps"] == -1:  # SB3: as many gradient steps as env steps collected per rollout
        out["gradient_steps"] = out["train_freq"] * out["n_envs"]
    return out


def _train_freq(value: Any, where: str) -> Any:
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and value[1] == "step":
            return value[0]
        raise ConfigError(
            f"{where}: train_freq {list(value)} is not supported (steps only, e.g. 256 or [256, 'step'])"
        )
    return value


def _policy_kwargs(value: Any, where: str, algorithm: str) -> dict[str, Any]:
    """``"dict(net_arch=[256, 256])"`` (or a mapping) -> our keys, parsed as literals only."""
    if isinstance(value, str):
        try:
            tree = ast.parse(value.strip(), mode="eval").body
        except SyntaxError:
            raise ConfigError(f"{where}: policy_kwargs is not a literal: {value!r}") from None
        if (
            isinstance(tree, ast.Call)
            and isinstance(tree.func, ast.Name)
            and tree.func.id == "dict"
            and not tree.args
        ):
            items = {}
            for keyword in tree.keywords:
                try:
                    items[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:
                    raise ConfigError(
                        f"{where}: policy_kwargs {keyword.arg}= is not a literal (e.g. activation_fn=nn.ReLU "
                        "is not supported; use our 'activation' key)"
                    ) from None
        else:
            try:
                items = ast.literal_eval(tree)
            except ValueError:
                raise ConfigError(f"{where}: policy_kwargs is not a literal: {value!r}") from None
        value = items
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: policy_kwargs must be a dict, got {value!r}")
    out = {}
    for key, item in value.items():
        if key == "net_arch" or (key == "n_quantiles" and algorithm == "qrdqn"):
            out[key] = item
        elif key == "n_quantiles":
            raise ConfigError(
                f"{where}: policy_kwargs 'n_quantiles' is a QR-DQN setting (a qrdqn.yml block): "
                "add --algorithm qrdqn"
            )
        else:
            supported = "net_arch, n_quantiles" if algorithm == "qrdqn" else "net_arch"
            raise ConfigError(f"{where}: policy_kwargs '{key}' is not supported ({supported} only)")
    return out
