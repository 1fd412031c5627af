"""The hyperparameter ranges the tuner searches, in one place, always containing the base config.

``core`` is the four the product promises: gamma, batch size, target update interval and the
epsilon decay (fraction of the budget, final epsilon). ``full`` adds the learning rate, the update
schedule, n-step, network size and the plug-ins, and for QR-DQN the number of quantiles.

Every space is built *around its base config*: a float range is widened to take the base's value
and a categorical list gains the base's choice when it lacks it. So the base config is a point of
every space it is tuned from (:func:`base_params`), the sweep can start from it (it is enqueued as
trial 0) and the final choice can always fall back on it. A stock-SB3 base (``implementation:
sb3``) keeps its plug-ins off: the space offers only the base's policy, target and replay there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cartpole_dqn.config import RunConfig

if TYPE_CHECKING:
    import optuna

SPACES = ("core", "full")

# train_freq/gradient_steps pairs, written "train_freq/gradient_steps" ("64/48" is the default's).
SCHEDULES = ("16/8", "32/16", "64/32", "64/48", "64/64", "128/64", "256/128")
NETWORKS = ("64x64", "128x128", "256x256", "256")


@dataclass(frozen=True)
class FloatRange:
    name: str
    low: float
    high: float
    log: bool = False

    def around(self, value: float) -> FloatRange:
        return FloatRange(self.name, min(self.low, value), max(self.high, value), self.log)

    def suggest(self, trial: optuna.Trial) -> float:
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def contains(self, value: Any) -> bool:
        return isinstance(value, float) and self.low <= value <= self.high

    def distribution(self) -> optuna.distributions.BaseDistribution:
        import optuna

        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Choice:
    name: str
    choices: tuple[Any, ...]

    def around(self, value: Any) -> Choice:
        return self if value in self.choices else Choice(self.name, (*self.choices, value))

    def suggest(self, trial: optuna.Trial) -> Any:
        return trial.suggest_categorical(self.name, list(self.choices))

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def distribution(self) -> optuna.distributions.BaseDistribution:
        import optuna

        return optuna.distributions.CategoricalDistribution(self.choices)


Param = FloatRange | Choice

CORE: tuple[Param, ...] = (
    FloatRange("gamma", 0.95, 0.999),
    Choice("batch_size", (32, 64, 128, 256)),
    Choice("target_update_interval", (1, 10, 100, 250, 500, 1000)),
    FloatRange("exploration_fraction", 0.05, 0.4),
    FloatRange("exploration_final_eps", 0.01, 0.1),
)
FULL_EXTRA: tuple[Param, ...] = (
    FloatRange("learning_rate", 1e-4, 3e-2, log=True),
    Choice("schedule", SCHEDULES),
    Choice("n_steps", (1, 3, 5)),
    Choice("network", NETWORKS),
    Choice("policy", ("MlpPolicy", "DuelingMlpPolicy")),
    Choice("double_q", (False, True)),
    Choice("prioritized_replay", (False, True)),
)
QUANTILES = Choice("n_quantiles", (10, 25, 50, 100))
PLUGINS = ("policy", "double_q", "prioritized_replay")


def base_params(space: str, base: RunConfig) -> dict[str, Any]:
    """The base config as a point of ``space`` (the params that enqueue it as a trial)."""
    encoded: dict[str, Any] = {
        "gamma": base.gamma,
        "batch_size": base.batch_size,
        "target_update_interval": base.target_update_interval,
        "exploration_fraction": base.exploration_fraction,
        "exploration_final_eps": base.exploration_final_eps,
    }
    if space == "full":
        encoded.update(
            learning_rate=base.learning_rate,
            schedule=f"{base.train_freq}/{base.gradient_steps}",
            n_steps=base.n_steps,
            network="x".join(str(size) for size in base.net_arch),
            policy=base.policy,
            double_q=base.double_q,
            prioritized_replay=base.prioritized_replay,
        )
        if base.algorithm == "qrdqn":
            encoded["n_quantiles"] = base.n_quantiles  # None: sb3-contrib's default
    return encoded


def params_of(space: str, base: RunConfig) -> tuple[Param, ...]:
    """The space's parameters with their ranges and choices widened to contain the base config."""
    point = base_params(space, base)
    listed: Sequence[Param] = CORE
    if space == "full":
        listed = (*CORE, *FULL_EXTRA, *((QUANTILES,) if base.algorithm == "qrdqn" else ()))
    out: list[Param] = []
    for param in listed:
        if base.implementation == "sb3" and param.name in PLUGINS:
            param = Choice(param.name, (point[param.name],))  # stock SB3 has no plug-ins to switch on
        out.append(param.around(point[param.name]))
    return tuple(out)


def distributions(space: str, base: RunConfig) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distributions of the space around ``base`` (what its trials' params are drawn from)."""
    return {param.name: param.distribution() for param in params_of(space, base)}


def suggest(trial: optuna.Trial, space: str, base: RunConfig) -> dict[str, Any]:
    """Config overrides for one trial of a sweep around ``base``."""
    return overrides_from_params({param.name: param.suggest(trial) for param in params_of(space, base)})


def overrides_from_params(params: dict[str, Any]) -> dict[str, Any]:
    """Config overrides from trial params (decodes the named schedule and network choices)."""
    out = dict(params)
    if "schedule" in out:
        train_freq, gradient_steps = str(out.pop("schedule")).split("/")
        out["train_freq"], out["gradient_steps"] = int(train_freq), int(gradient_steps)
    if "network" in out:
        out["net_arch"] = [int(size) for size in str(out.pop("network")).split("x")]
    return out
