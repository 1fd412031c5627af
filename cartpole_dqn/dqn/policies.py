"""SB3 ``DQNPolicy`` subclasses that build our Q-networks through the ``make_q_net`` seam."""

from __future__ import annotations

from typing import Any

from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from cartpole_dqn.dqn.networks import DuelingHead


class DuelingStreams:
    """What the dueling networks and policies (DQN's and QR-DQN's) add to SB3's constructor
    parameters: the streams' hidden sizes, so that save/load rebuilds the same networks."""

    stream_arch: list[int]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data: dict[str, Any] = super()._get_constructor_parameters()  # type: ignore[misc]
        data["stream_arch"] = self.stream_arch
        return data


class DuelingPolicy(DuelingStreams):
    """A policy taking ``stream_arch``, set before the parent constructor builds the networks."""

    def __init__(self, *args: Any, stream_arch: list[int] | None = None, **kwargs: Any) -> None:
        self.stream_arch = list(stream_arch or [])
        super().__init__(*args, **kwargs)


class DuelingQNetwork(DuelingStreams, QNetwork):
    """SB3's ``QNetwork`` with a dueling head in place of the plain MLP (Wang et al. 2016).

    :param stream_arch: hidden layer sizes of each of the value and advantage streams;
        ``net_arch`` is the shared trunk.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        stream_arch: list[int] | None = None,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor,
            features_dim,
            net_arch=net_arch,
            activation_fn=activation_fn,
            normalize_images=normalize_images,
        )
        self.stream_arch = list(stream_arch or [])
        self.q_net = DuelingHead(  # type: ignore[assignment]
            features_dim, int(action_space.n), list(self.net_arch), self.stream_arch, activation_fn
        )


class CachedModeDQNPolicy(DQNPolicy):
    """A ``DQNPolicy`` that skips ``set_training_mode`` when the mode is already set.

    SB3 calls ``set_training_mode(False)`` before every action prediction, and each call walks all
    submodules; on CartPole that walk costs about as much as the forward pass itself.
    """

    def set_training_mode(self, mode: bool) -> None:
        if self.training == mode and self.q_net.training == mode:
            return
        super().set_training_mode(mode)


class DuelingDQNPolicy(DuelingPolicy, CachedModeDQNPolicy):
    """DQN policy whose online and target networks are dueling Q-networks (alias ``DuelingMlpPolicy``).

    :param stream_arch: hidden layer sizes of each dueling stream (default: none, linear streams).
    All other parameters are those of SB3's ``DQNPolicy``; ``net_arch`` is the shared trunk.
    """

    def make_q_net(self) -> DuelingQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return DuelingQNetwork(**net_args, stream_arch=self.stream_arch).to(self.device)
