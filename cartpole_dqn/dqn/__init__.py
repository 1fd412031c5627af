"""The SB3 plug-ins: what users import to get Double targets, dueling networks and prioritized replay.

Each is an SB3 extension through SB3's own seams, so every SB3 tool keeps working with them:

- :class:`DQNAgent`: SB3 ``DQN`` with a Double-DQN target and prioritized-replay weights (``train``).
- :class:`DuelingDQNPolicy` (alias ``"DuelingMlpPolicy"``): dueling Q-networks (``make_q_net``).
- :class:`QRDQNAgent`: sb3-contrib ``QRDQN`` with the same Double target and prioritized replay.
- :class:`DuelingQRDQNPolicy` (alias ``"DuelingMlpPolicy"`` there): dueling quantile networks.
- :class:`PrioritizedReplayBuffer`: a ``ReplayBuffer`` subclass sampling through a :class:`SumTree`.
- :mod:`cartpole_dqn.dqn.factory`: a :class:`~cartpole_dqn.config.RunConfig` -> SB3 agent.
"""

from cartpole_dqn.dqn.agent import DQNAgent, td_target
from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from cartpole_dqn.dqn.policies import DuelingDQNPolicy, DuelingQNetwork
from cartpole_dqn.dqn.qrdqn import QRDQNAgent
from cartpole_dqn.dqn.quantile_policies import DuelingQRDQNPolicy
from cartpole_dqn.dqn.sumtree import SumTree

__all__ = [
    "DQNAgent",
    "DuelingDQNPolicy",
    "DuelingQNetwork",
    "DuelingQRDQNPolicy",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "QRDQNAgent",
    "SumTree",
    "td_target",
]
