"""sb3-contrib ``QRDQNPolicy`` subclass that builds dueling quantile networks through the
``make_quantile_net`` seam (the QR-DQN counterpart of :mod:`cartpole_dqn.dqn.policies`)."""

from __future__ import annotations

from gymnasium import spaces
from sb3_contrib.qrdqn.policies import QRDQNPolicy, QuantileNetwork
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from cartpole_dqn.dqn.networks import DuelingQuantileHead
from cartpole_dqn.dqn.policies import DuelingPolicy, DuelingStreams


class DuelingQuantileNetwork(DuelingStreams, QuantileNetwork):
    """sb3-contrib's ``QuantileNetwork`` with a dueling quantile head in place of its plain MLP.

    :param stream_arch: hidden layer sizes of each of the value and advantage streams;
        ``net_arch`` is the shared trunk.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        n_quantiles: int = 200,
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
            n_quantiles=n_quantiles,
            net_arch=net_arch,
            activation_fn=activation_fn,
            normalize_images=normalize_images,
        )
        self.stream_arch = list(stream_arch or [])
        self.quantile_net = DuelingQuantileHead(  # type: ignore[assignment]
            features_dim,
            int(action_space.n),
            n_quantiles,
            list(self.net_arch),
            self.stream_arch,
            activation_fn,
        )


class DuelingQRDQNPolicy(DuelingPolicy, QRDQNPolicy):
    """QR-DQN policy whose online and target networks are dueling quantile networks.

    Registered under the alias ``"DuelingMlpPolicy"`` in
    :class:`~cartpole_dqn.dqn.qrdqn.QRDQNAgent`, as SB3 registers ``"MlpPolicy"`` once per algorithm:
    one policy name per network shape, whichever algorithm trains it.

    :param stream_arch: hidden layer sizes of each dueling stream (default: none, linear streams).
    All other parameters are those of sb3-contrib's ``QRDQNPolicy``; ``net_arch`` is the shared trunk.
    """

    def make_quantile_net(self) -> DuelingQuantileNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return DuelingQuantileNetwork(**net_args, stream_arch=self.stream_arch).to(self.device)
