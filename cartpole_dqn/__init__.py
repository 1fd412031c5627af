"""cartpole_dqn: DQN on Gymnasium on top of Stable-Baselines3, with dueling, PER and Double-DQN plug-ins."""

from cartpole_dqn.agent import DQNAgent, td_target
from cartpole_dqn.buffers import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.errors import ConfigError, DivergenceError, UsageError
from cartpole_dqn.export import ExportedPolicy, load_policy
from cartpole_dqn.policies import DuelingDQNPolicy, DuelingQNetwork
from cartpole_dqn.sumtree import SumTree

__all__ = [
    "ConfigError",
    "DQNAgent",
    "DivergenceError",
    "DuelingDQNPolicy",
    "DuelingQNetwork",
    "ExportedPolicy",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "RunConfig",
    "SumTree",
    "UsageError",
    "load_config",
    "load_policy",
    "td_target",
]

__version__ = "0.1.0"
