"""One typed configuration for a training run.

Every value a run depends on lives in :class:`RunConfig`; it is built once at the edge
(YAML file + command-line overrides), validated there, and trusted everywhere downstream.
The field metadata (help text, bounds, allowed choices, flag name) and the field kinds below are
the single source for validation, the YAML schema and the command-line flags. Importing this
module is cheap (no torch): the CLIs parse and validate before any heavy import.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cartpole_dqn.errors import ConfigError

# Activation names a config may give; cartpole_dqn.dqn.networks maps each to its torch class (a test
# checks that the two agree; the plug-ins import nothing of this module).
ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "gelu", "silu")
POLICIES = ("MlpPolicy", "DuelingMlpPolicy")
IMPLEMENTATIONS = ("cartpole_dqn", "sb3")
ALGORITHMS = ("dqn", "qrdqn")
QRDQN_DEFAULT_QUANTILES = 200  # sb3-contrib QRDQNPolicy's default
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _spec(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] | None = None,
    item_ge: int | None = None,
) -> Any:
    """A dataclass field carrying its help text and bounds (CleanRL-style typed config)."""
    meta = {"help": help, "flag": flag, "ge": ge, "gt": gt, "le": le, "choices": choices, "item_ge": item_ge}
    if isinstance(default, list):
        frozen = list(default)
        return field(default_factory=lambda: list(frozen), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs; the defaults are the project's default CartPole-v1 config.

    ``experiments/configs/default.yaml`` spells the same values out (a test keeps them equal).
    """

    # --- environment and run ---
    env_id: str = _spec("CartPole-v1", "Gymnasium env id (Discrete actions, Box observations)")
    seed: int = _spec(0, "seed for the agent, the training envs and (offset) the eval envs", ge=0)
    total_timesteps: int = _spec(50_000, "training budget in env steps", ge=1)
    n_envs: int = _spec(1, "parallel training envs (DummyVecEnv)", ge=1)
    device: str = _spec("auto", "torch device: auto, cpu, cuda or cuda:N")
    torch_threads: int = _spec(1, "torch CPU threads; 1 is fastest for small MLPs", ge=1)
    algorithm: str = _spec(
        "dqn",
        "dqn: DQN (SB3's DQN); qrdqn: QR-DQN, distributional (sb3-contrib's QRDQN, Dabney et al. 2018)",
        choices=ALGORITHMS,
    )
    implementation: str = _spec(
        "cartpole_dqn",
        "cartpole_dqn: our agents (plug-ins); sb3: stock SB3 DQN / sb3-contrib QRDQN (baselines)",
        choices=IMPLEMENTATIONS,
    )
    # --- network ---
    policy: str = _spec("DuelingMlpPolicy", "Q-network policy", choices=POLICIES)
    # _spec returns a dataclasses.field with a default_factory for lists; ruff cannot see that.
    net_arch: list[int] = _spec([64, 64], "hidden layer sizes (the trunk for dueling)", item_ge=1)  # noqa: RUF009
    dueling_stream_arch: list[int] = _spec([], "hidden layer sizes of each dueling stream", item_ge=1)  # noqa: RUF009
    activation: str = _spec("relu", "activation function", choices=tuple(ACTIVATIONS))
    n_quantiles: int | None = _spec(
        None, f"quantiles per action, qrdqn only (none: sb3-contrib's {QRDQN_DEFAULT_QUANTILES})", ge=1
    )
    # --- DQN hyperparameters passed to SB3 ---
    learning_rate: float = _spec(2e-2, "Adam learning rate", gt=0)
    buffer_size: int = _spec(100_000, "replay buffer capacity (transitions)", ge=1)
    learning_starts: int = _spec(500, "env steps collected before the first update", ge=0)
    batch_size: int = _spec(64, "minibatch size", ge=1)
    gamma: float = _spec(0.99, "discount factor, in (0, 1]", gt=0, le=1)
    tau: float = _spec(1.0, "target network update coefficient, in (0, 1] (1 = hard copy)", gt=0, le=1)
    train_freq: int = _spec(64, "env steps between training phases", ge=1)
    gradient_steps: int = _spec(48, "gradient steps per training phase", ge=1)
    target_update_interval: int = _spec(10, "env steps between target network updates", ge=1)
    exploration_fraction: float = _spec(0.16, "fraction of the budget over which epsilon decays", ge=0, le=1)
    exploration_initial_eps: float = _spec(1.0, "initial epsilon", ge=0, le=1)
    exploration_final_eps: float = _spec(0.04, "final epsilon", ge=0, le=1)
    n_steps: int = _spec(3, "n-step returns (1 = one-step TD)", ge=1)
    max_grad_norm: float | None = _spec(
        10.0, "gradient norm clip (YAML null: no clipping, qrdqn only, as stock QRDQN's default)", gt=0
    )
    # --- plug-ins ---
    double_q: bool = _spec(False, "Double-DQN target (van Hasselt et al. 2016)")
    prioritized_replay: bool = _spec(False, "prioritized replay (Schaul et al. 2016)")
    per_alpha: float = _spec(0.6, "PER priority exponent alpha", ge=0, le=1)
    per_beta_initial: float = _spec(
        0.4, "PER importance-sampling exponent at the start (annealed to 1)", ge=0, le=1
    )
    per_eps: float = _spec(1e-6, "PER priority floor added to |TD error|", gt=0)
    # --- solve protocol: solved = the first 100-episode greedy evaluation (every eval_freq steps)
    #     whose mean return reaches the threshold, at a step within the budget ---
    eval_freq: int = _spec(
        1000,
        "training env steps between evaluations; the protocol measures steps to solve at 1,000 "
        "(larger: coarser; 0: evaluate only at the budget)",
        ge=0,
    )
    eval_episodes: int = _spec(100, "episodes of the deciding greedy evaluation", ge=1)
    curve_episodes: int = _spec(
        10,
        "an evaluation stops once a pass is impossible; its first N episodes still finish and give "
        "the eval curve its value (0 = never stop early)",
        ge=0,
    )
    threshold: float | None = _spec(None, "solve threshold (default: the env spec's reward_threshold)")
    early_stop: bool = _spec(True, "stop training at the first solved evaluation")
    checkpoint_every: int = _spec(5000, "env steps between resumable checkpoints (0 = none)", ge=0)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> RunConfig:
        """Build and validate a config; raise :class:`ConfigError` naming the first bad key or value."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: expected a mapping of config keys, got {type(values).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = _resolve_aliases(values, source)
        for key in values:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise ConfigError(
                    f"{source}: unknown key {key!r}{suggestion}; allowed keys: {', '.join(known)}"
                )
        checked = {name: _check_value(known[name], value, source) for name, value in values.items()}
        config = cls(**checked)
        config._check_consistency(source)
        return config

    def _check_consistency(self, source: str) -> None:
        if not _DEVICE_PATTERN.match(self.device):
            raise ConfigError(f"{source}: device must be one of auto, cpu, cuda, cuda:N, got {self.device!r}")
        if self.curve_episodes > self.eval_episodes:
            raise ConfigError(
                f"{source}: curve_episodes ({self.curve_episodes}) must not exceed "
                f"eval_episodes ({self.eval_episodes})"
            )
        if self.policy != "DuelingMlpPolicy" and self.dueling_stream_arch:
            raise ConfigError(f"{source}: dueling_stream_arch is only allowed with policy DuelingMlpPolicy")
        if self.algorithm == "dqn":
            if self.n_quantiles is not None:
                raise ConfigError(f"{source}: n_quantiles is only allowed with algorithm qrdqn")
            if self.max_grad_norm is None:
                raise ConfigError(
                    f"{source}: max_grad_norm null (no clipping) is only allowed with algorithm qrdqn; "
                    "DQN always clips, give a number > 0"
                )
        if self.implementation == "sb3":
            plugins = [
                name
                for name, on in (
                    ("policy DuelingMlpPolicy", self.policy != "MlpPolicy"),
                    ("double_q", self.double_q),
                    ("prioritized_replay", self.prioritized_replay),
                )
                if on
            ]
            if plugins:
                stock = "stock SB3 DQN" if self.algorithm == "dqn" else "stock sb3-contrib QRDQN"
                raise ConfigError(
                    f"{source}: implementation sb3 ({stock}) has no {', '.join(plugins)}; "
                    "use implementation cartpole_dqn"
                )
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ConfigError(f"{source}: threshold must be a finite number, got {self.threshold}")

    @property
    def quantiles(self) -> int:
        """The number of quantiles a qrdqn agent learns (``n_quantiles`` or sb3-contrib's default)."""
        return QRDQN_DEFAULT_QUANTILES if self.n_quantiles is None else self.n_quantiles

    @property
    def effective_eval_freq(self) -> int:
        """Steps between evaluations as the solve callback runs them (0 means: only at the budget)."""
        return self.eval_freq or self.total_timesteps

    @property
    def coarse_evaluation(self) -> bool:
        """Steps to solve are not measured at the protocol's 1,000-step resolution."""
        return self.eval_freq == 0 or self.eval_freq > 1000

    def replace(self, **changes: Any) -> RunConfig:
        """A validated copy with some values changed."""
        return RunConfig.from_mapping({**self.to_dict(), **changes}, source="config")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# Old spellings of config keys, still accepted (earlier releases wrote them into config.yaml files).
# One name per concept: a config key and its command-line flag are the same word (``gamma`` /
# ``--gamma``, ``total_timesteps`` / ``--total-timesteps``). The spellings users already write are
# accepted everywhere (YAML keys and flags alike) as aliases of the key: our own short flags from
# release 0.1.0, rl-baselines3-zoo's ``n_timesteps``, and the evaluation's old ``screen_episodes``.
KEY_ALIASES = {
    "env": "env_id",
    "timesteps": "total_timesteps",
    "n_timesteps": "total_timesteps",
    "per": "prioritized_replay",
    "screen_episodes": "curve_episodes",
}


def _resolve_aliases(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The mapping with old key spellings renamed; giving both spellings of one key is an error."""
    resolved: dict[str, Any] = {}
    spelled: dict[str, Any] = {}
    for key, value in values.items():
        name = KEY_ALIASES.get(key, key) if isinstance(key, str) else key
        if name in resolved:
            first, second = sorted([spelled[name], key], key=lambda k: k != name)
            raise ConfigError(f"{source}: '{second}' and '{first}' are the same key; give only '{first}'")
        resolved[name] = value
        spelled[name] = key
    return resolved


@dataclass(frozen=True)
class FieldKind:
    """How values of one field type are checked, and how a command-line flag reads them."""

    check: Callable[[dataclasses.Field[Any], Any, str], Any]  # (field, value, where) -> coerced value
    flag: Mapping[str, Any]  # argparse keyword arguments


def _check_bool(f: dataclasses.Field[Any], value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


def _check_int(f: dataclasses.Field[Any], value: Any, where: str) -> int:
    if isinstance(value, str):
        try:  # 5e4 and 50_000 in YAML 1.1 are strings; 50000.0 would be a float
            number = float(value.replace("_", "").strip())
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
        value = int(number) if number.is_integer() else value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    _check_bounds(where, value, f.metadata)
    return value


def integer(text: str) -> int:
    """An integer command-line value, written as in YAML and the zoo's files: ``50000``, ``50_000``,
    ``5e4`` or ``50000.0`` (argparse reports anything else as "invalid integer value")."""
    try:
        return int(text.replace("_", "").strip())
    except ValueError:
        number = float(text.replace("_", "").strip())  # ValueError: not a number at all
        if not number.is_integer():
            raise ValueError(f"not an integer: {text!r}") from None
        return int(number)


def _check_float(f: dataclasses.Field[Any], value: Any, where: str) -> float:
    if isinstance(value, str):
        # PyYAML 1.1 reads 1e-3 (no dot) as a string: accept the number the user meant.
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    _check_bounds(where, value, f.metadata)
    return value


def _check_optional_int(f: dataclasses.Field[Any], value: Any, where: str) -> int | None:
    return None if value is None else _check_int(f, value, where)


def _check_optional_float(f: dataclasses.Field[Any], value: Any, where: str) -> float | None:
    return None if value is None else _check_float(f, value, where)


def _check_str(f: dataclasses.Field[Any], value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _check_int_list(f: dataclasses.Field[Any], value: Any, where: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in value
    ):
        raise ConfigError(f"{where} must be a list of integers, got {value!r}")
    item_ge = f.metadata.get("item_ge")
    if item_ge is not None and any(v < item_ge for v in value):
        raise ConfigError(f"{where} entries must be >= {item_ge}, got {list(value)}")
    if f.name == "net_arch" and not value:
        raise ConfigError(f"{where} must list at least one hidden layer size, got []")
    return list(value)


# Field type (as annotated on RunConfig) -> its kind; a test checks that every field has one.
FIELD_KINDS: dict[str, FieldKind] = {
    "bool": FieldKind(_check_bool, {"action": argparse.BooleanOptionalAction}),
    "int": FieldKind(_check_int, {"type": integer, "metavar": "N"}),
    "float": FieldKind(_check_float, {"type": float, "metavar": "X"}),
    "int | None": FieldKind(_check_optional_int, {"type": integer, "metavar": "N"}),
    "float | None": FieldKind(_check_optional_float, {"type": float, "metavar": "X"}),
    "str": FieldKind(_check_str, {"metavar": "STR"}),
    "list[int]": FieldKind(_check_int_list, {"type": integer, "nargs": "*", "metavar": "N"}),
}


def field_kind(f: dataclasses.Field[Any]) -> FieldKind:
    return FIELD_KINDS[str(f.type)]


def _check_value(f: dataclasses.Field[Any], value: Any, source: str) -> Any:
    """Coerce one value to its field's type and check its bounds."""
    return field_kind(f).check(f, value, f"{source}: {f.name}")


def _check_bounds(where: str, value: float, meta: Mapping[str, Any]) -> None:
    ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
    low = f"[{_fmt(ge)}" if ge is not None else (f"({_fmt(gt)}" if gt is not None else "(-inf")
    high = f"{_fmt(le)}]" if le is not None else "inf)"
    ok = (ge is None or value >= ge) and (gt is None or value > gt) and (le is None or value <= le)
    if not ok:
        raise ConfigError(f"{where} must be in {low}, {high}, got {value}")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a mapping; any problem with the file is a :class:`ConfigError`."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    if not p.is_file():
        raise ConfigError(f"config path is not a file: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file is not UTF-8 text (binary?): {p}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file is not valid YAML{at}: {p}") from None
    if data is None:
        raise ConfigError(f"config file is empty: {p} (expected a mapping of config keys)")
    if not isinstance(data, dict):
        raise ConfigError(f"config file must hold a mapping of config keys, got {type(data).__name__}: {p}")
    return data


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """YAML file (optional) + overrides (e.g. CLI flags) -> one validated :class:`RunConfig`."""
    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        data = read_config_file(path)
        source = str(path)
        from cartpole_dqn.zoo import flat_policy_kwargs, is_zoo_file, zoo_block

        if is_zoo_file(data):
            env_id = (overrides or {}).get("env_id")
            algorithm = str((overrides or {}).get("algorithm", "dqn"))
            data = zoo_block(data, None if env_id is None else str(env_id), source, algorithm)
        elif "policy_kwargs" in data:
            data = flat_policy_kwargs(data, source)
        values.update(data)
    config = RunConfig.from_mapping(values, source=source)
    if overrides:
        config = RunConfig.from_mapping({**config.to_dict(), **overrides}, source="command line")
    return config


# Where named configs live: the working folder's experiments/configs, then the checkout's own.
CONFIG_DIRS = (Path("experiments/configs"), Path(__file__).resolve().parents[1] / "experiments" / "configs")


def resolve_config_path(name: str | Path) -> Path:
    """A config name (``default`` -> experiments/configs/default.yaml) or a path to a YAML file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists() or len(candidate.parts) > 1:
        if not candidate.exists():
            raise ConfigError(f"config file not found: {name}")
        if not candidate.is_file():
            raise ConfigError(f"config path is not a file: {name}")
        return candidate
    for folder in CONFIG_DIRS:
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for folder in CONFIG_DIRS if folder.is_dir() for p in folder.glob("*.yaml")})
    raise ConfigError(f"unknown config '{name}': give a YAML path or one of {', '.join(known)}")


def config_flag(name: str) -> str:
    """A config key's command-line flag: the key itself (``total_timesteps`` -> ``--total-timesteps``)."""
    return "--" + name.replace("_", "-")


def alias_flags(name: str) -> list[str]:
    """The older spellings accepted for a key's flag (``total_timesteps``: ``--timesteps``, ...)."""
    return [config_flag(old) for old, new in KEY_ALIASES.items() if new == name]
