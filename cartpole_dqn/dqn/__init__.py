"""The SB3 plug-ins: what users import to get Double targets, dueling networks and prioritized replay.

Each is an SB3 extension through SB3's own seams, so every SB3 tool keeps working with them:

- :class:`DQNAgent`: SB3 ``DQN`` with a Double-DQN target and prioritized-replay weights (``train``).
- :class:`DuelingDQNPolicy` (alias ``"DuelingMlpPolicy"``): dueling Q-networks (``make_q_net``).
- :class:`QRDQNAgent`: sb3-contrib ``QRDQN`` with the same Double target and prioritized replay.
- :class:`DuelingQRDQNPolicy` (alias ``"DuelingMlpPolicy"`` there): dueling quantile networks.
- :class:`PrioritizedReplayBuffer`: a ``ReplayBuffer`` subclass sampling through a :class:`SumTree`.

This subpackage stands alone: it imports torch, Gymnasium, SB3 and sb3-contrib, nothing else of
``cartpole_dqn`` (a test checks it), so the plug-ins work in any SB3 script. Building an agent
from a run config lives a layer above, in :mod:`cartpole_dqn.run.factory`. The names load on first
use (PEP 562), so importing :mod:`cartpole_dqn.dqn.divergence` alone needs no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "DQNAgent": "cartpole_dqn.dqn.agent",
    "td_target": "cartpole_dqn.dqn.agent",
    "DivergenceError": "cartpole_dqn.dqn.divergence",
    "PrioritizedReplayBuffer": "cartpole_dqn.dqn.buffers",
    "PrioritizedReplayBufferSamples": "cartpole_dqn.dqn.buffers",
    "DuelingDQNPolicy": "cartpole_dqn.dqn.policies",
    "DuelingQNetwork": "cartpole_dqn.dqn.policies",
    "QRDQNAgent": "cartpole_dqn.dqn.qrdqn",
    "DuelingQRDQNPolicy": "cartpole_dqn.dqn.quantile_policies",
    "SumTree": "cartpole_dqn.dqn.sumtree",
}
__all__ = [
    "DQNAgent",
    "DivergenceError",
    "DuelingDQNPolicy",
    "DuelingQNetwork",
    "DuelingQRDQNPolicy",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "QRDQNAgent",
    "SumTree",
    "td_target",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cartpole_dqn.dqn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


if TYPE_CHECKING:
    from cartpole_dqn.dqn.agent import DQNAgent, td_target
    from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
    from cartpole_dqn.dqn.divergence import DivergenceError
    from cartpole_dqn.dqn.policies import DuelingDQNPolicy, DuelingQNetwork
    from cartpole_dqn.dqn.qrdqn import QRDQNAgent
    from cartpole_dqn.dqn.quantile_policies import DuelingQRDQNPolicy
    from cartpole_dqn.dqn.sumtree import SumTree
