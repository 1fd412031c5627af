"""cartpole_dqn: DQN and QR-DQN on Gymnasium on Stable-Baselines3, with dueling, PER and Double plug-ins.

Importing the package is cheap: the public names load their modules (and torch) on first use
(PEP 562), so the command lines answer ``--help`` and bad input at once. Layers:
``cartpole_dqn.dqn`` (the SB3 plug-ins), ``cartpole_dqn.run`` (the solve protocol and a run's
artifacts), ``cartpole_dqn.tuning`` and ``cartpole_dqn.benchmarking`` (the tooling around them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cartpole_dqn import _legacy

__version__ = "0.4.2"

# Public name -> the module that defines it.
_PUBLIC = {
    "DQNAgent": "cartpole_dqn.dqn.agent",
    "td_target": "cartpole_dqn.dqn.agent",
    "DuelingDQNPolicy": "cartpole_dqn.dqn.policies",
    "DuelingQNetwork": "cartpole_dqn.dqn.policies",
    "QRDQNAgent": "cartpole_dqn.dqn.qrdqn",
    "DuelingQRDQNPolicy": "cartpole_dqn.dqn.quantile_policies",
    "PrioritizedReplayBuffer": "cartpole_dqn.dqn.buffers",
    "PrioritizedReplayBufferSamples": "cartpole_dqn.dqn.buffers",
    "SumTree": "cartpole_dqn.dqn.sumtree",
    "ExportedPolicy": "cartpole_dqn.run.models",
    "load_policy": "cartpole_dqn.run.models",
    "RunResult": "cartpole_dqn.run.results",
    "RunConfig": "cartpole_dqn.config",
    "load_config": "cartpole_dqn.config",
    "ConfigError": "cartpole_dqn.errors",
    "DivergenceError": "cartpole_dqn.dqn.divergence",
    "UsageError": "cartpole_dqn.errors",
}
__all__ = [  # the keys of _PUBLIC (a test keeps them equal), spelled out for linters and readers
    "ConfigError",
    "DQNAgent",
    "DivergenceError",
    "DuelingDQNPolicy",
    "DuelingQNetwork",
    "DuelingQRDQNPolicy",
    "ExportedPolicy",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "QRDQNAgent",
    "RunConfig",
    "RunResult",
    "SumTree",
    "UsageError",
    "load_config",
    "load_policy",
    "td_target",
]

_legacy.install()  # model zips and checkpoints written by 0.1.0 name the old flat module paths


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cartpole_dqn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


if TYPE_CHECKING:
    from cartpole_dqn.config import RunConfig, load_config
    from cartpole_dqn.dqn.agent import DQNAgent, td_target
    from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
    from cartpole_dqn.dqn.policies import DuelingDQNPolicy, DuelingQNetwork
    from cartpole_dqn.dqn.qrdqn import QRDQNAgent
    from cartpole_dqn.dqn.quantile_policies import DuelingQRDQNPolicy
    from cartpole_dqn.dqn.sumtree import SumTree
    from cartpole_dqn.errors import ConfigError, DivergenceError, UsageError
    from cartpole_dqn.run.models import ExportedPolicy, load_policy
    from cartpole_dqn.run.results import RunResult
