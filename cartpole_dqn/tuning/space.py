"""The hyperparameter ranges the tuner searches, in one place.

``core`` is the four the product promises: gamma, batch size, target update interval and the
epsilon decay (fraction of the budget, final epsilon). ``full`` adds the learning rate, the update
schedule, n-step, network size and the plug-ins, and for QR-DQN the number of quantiles. Ranges
are centred on the default config (experiments/configs/default.yaml), wide enough to include the
zoo block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

SPACES = ("core", "full")

# train_freq/gradient_steps pairs, named as in the default config's comment.
SCHEDULES = {
    "16/8": (16, 8),
    "32/16": (32, 16),
    "64/32": (64, 32),
    "128/64": (128, 64),
    "256/128": (256, 128),
    "64/64": (64, 64),
}
NETWORKS = {"64x64": [64, 64], "128x128": [128, 128], "256x256": [256, 256], "256": [256]}


def suggest(trial: optuna.Trial, space: str, algorithm: str = "dqn") -> dict[str, Any]:
    """Config overrides for one trial of a sweep over ``algorithm`` (dqn or qrdqn)."""
    raw: dict[str, Any] = {
        "gamma": trial.suggest_float("gamma", 0.95, 0.999),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
        "target_update_interval": trial.suggest_categorical(
            "target_update_interval", [1, 10, 100, 500, 1000]
        ),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.05, 0.4),
        "exploration_final_eps": trial.suggest_float("exploration_final_eps", 0.01, 0.1),
    }
    if space == "full":
        raw.update(
            learning_rate=trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
            schedule=trial.suggest_categorical("schedule", list(SCHEDULES)),
            n_steps=trial.suggest_categorical("n_steps", [1, 3, 5]),
            network=trial.suggest_categorical("network", list(NETWORKS)),
            policy=trial.suggest_categorical("policy", ["MlpPolicy", "DuelingMlpPolicy"]),
            double_q=trial.suggest_categorical("double_q", [False, True]),
            prioritized_replay=trial.suggest_categorical("prioritized_replay", [False, True]),
        )
        if algorithm == "qrdqn":
            raw["n_quantiles"] = trial.suggest_categorical("n_quantiles", [10, 25, 50, 100])
    return overrides_from_params(raw)


def overrides_from_params(params: dict[str, Any]) -> dict[str, Any]:
    """Config overrides from trial params (decodes the named schedule and network choices)."""
    out = dict(params)
    if "schedule" in out:
        out["train_freq"], out["gradient_steps"] = SCHEDULES[out.pop("schedule")]
    if "network" in out:
        out["net_arch"] = list(NETWORKS[out.pop("network")])
    return out
