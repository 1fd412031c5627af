"""Q-network building blocks (plain torch modules, no SB3 dependency)."""

from __future__ import annotations

import torch as th
from torch import nn

# Activation name (as configs spell it) -> torch class.
ACTIVATION_CLASSES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def activation_name(cls: type[nn.Module]) -> str:
    """The config name of an activation class (the inverse of ``ACTIVATION_CLASSES``)."""
    for name, known in ACTIVATION_CLASSES.items():
        if cls is known:
            return name
    raise KeyError(cls.__name__)


def mlp(in_dim: int, hidden: list[int], activation: type[nn.Module]) -> tuple[nn.Sequential, int]:
    """A stack of Linear + activation layers; returns it and its output width."""
    layers: list[nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [nn.Linear(width, size), activation()]
        width = size
    return nn.Sequential(*layers), width


class DuelingHead(nn.Module):
    """Dueling Q-values: Q = V + A - mean(A) (Wang et al. 2016, arXiv:1511.06581).

    A shared trunk feeds a value stream (one output) and an advantage stream (one output per
    action). Subtracting the mean advantage makes V and A identifiable without changing argmax Q.
    """

    def __init__(
        self,
        in_dim: int,
        n_actions: int,
        trunk_arch: list[int],
        stream_arch: list[int],
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.trunk, width = mlp(in_dim, trunk_arch, activation)
        value_hidden, value_width = mlp(width, stream_arch, activation)
        advantage_hidden, advantage_width = mlp(width, stream_arch, activation)
        self.value = nn.Sequential(*value_hidden, nn.Linear(value_width, 1))
        self.advantage = nn.Sequential(*advantage_hidden, nn.Linear(advantage_width, n_actions))

    def streams(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """The value (batch, 1) and advantage (batch, n_actions) streams."""
        hidden = self.trunk(features)
        return self.value(hidden), self.advantage(hidden)

    def forward(self, features: th.Tensor) -> th.Tensor:
        value, advantage = self.streams(features)
        return value + advantage - advantage.mean(dim=1, keepdim=True)


class DuelingQuantileHead(nn.Module):
    """Dueling quantiles: Z_i(s, a) = V_i(s) + A_i(s, a) - mean_a A_i(s, a), for each quantile i.

    The dueling decomposition (Wang et al. 2016, arXiv:1511.06581) applied per quantile of the
    return distribution, as in Rainbow (Hessel et al. 2018, arXiv:1710.02298): the value stream has
    one output per quantile, the advantage stream one per quantile and action. The output is flat,
    (batch, n_quantiles * n_actions) laid out quantile-major, which is the layout sb3-contrib's
    ``QuantileNetwork.forward`` views as (batch, n_quantiles, n_actions).
    """

    def __init__(
        self,
        in_dim: int,
        n_actions: int,
        n_quantiles: int,
        trunk_arch: list[int],
        stream_arch: list[int],
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.n_quantiles = n_quantiles
        self.trunk, width = mlp(in_dim, trunk_arch, activation)
        value_hidden, value_width = mlp(width, stream_arch, activation)
        advantage_hidden, advantage_width = mlp(width, stream_arch, activation)
        self.value = nn.Sequential(*value_hidden, nn.Linear(value_width, n_quantiles))
        self.advantage = nn.Sequential(*advantage_hidden, nn.Linear(advantage_width, n_quantiles * n_actions))

    def streams(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """The value (batch, n_quantiles, 1) and advantage (batch, n_quantiles, n_actions) streams."""
        hidden = self.trunk(features)
        value = self.value(hidden).view(-1, self.n_quantiles, 1)
        advantage = self.advantage(hidden).view(-1, self.n_quantiles, self.n_actions)
        return value, advantage

    def forward(self, features: th.Tensor) -> th.Tensor:
        value, advantage = self.streams(features)
        quantiles = value + advantage - advantage.mean(dim=2, keepdim=True)
        return quantiles.flatten(start_dim=1)
