"""The forward and backward passes of our Q-networks written out, with the kernels autograd uses.

For a Q-network this small, a gradient step's time is mostly framework overhead, not arithmetic:
module calls, autograd's graph, and its engine. :class:`ExplicitQNetwork` runs the same ATen
kernels autograd would (``addmm`` forward; ``mm``, ``sum`` and each activation's own backward
kernel such as ``threshold_backward``), in the same order, into preallocated gradient buffers: the
gradients are bitwise those of ``loss.backward()`` (a test checks it for every activation, plain
and dueling), at a fraction of the overhead. Networks it does not know (custom feature extractors,
other layers) return None from :func:`explicit_network`, and the agent keeps using autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.qrdqn.policies import QuantileNetwork
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.dqn.policies import QNetwork
from torch import nn
from torch.nn import functional as F

from cartpole_dqn.dqn.networks import DuelingHead

aten = th.ops.aten

# Each activation: its forward, and its backward from (grad, input, output) as autograd computes it.
Backward = Callable[[th.Tensor, th.Tensor, th.Tensor], th.Tensor]
ACTIVATIONS: dict[type[nn.Module], tuple[Callable[[th.Tensor], th.Tensor], Backward]] = {
    nn.ReLU: (th.relu, lambda g, x, y: aten.threshold_backward.default(g, y, 0)),
    nn.Tanh: (th.tanh, lambda g, x, y: aten.tanh_backward.default(g, y)),
    nn.ELU: (F.elu, lambda g, x, y: aten.elu_backward.default(g, 1.0, 1, 1.0, False, x)),
    nn.LeakyReLU: (F.leaky_relu, lambda g, x, y: aten.leaky_relu_backward.default(g, x, 0.01, False)),
    nn.GELU: (F.gelu, lambda g, x, y: aten.gelu_backward.default(g, x, approximate="none")),
    nn.SiLU: (F.silu, lambda g, x, y: aten.silu_backward.default(g, x)),
}


@dataclass
class Dense:
    """``activation(x @ weight.T + bias)``, with its parameters' gradient buffers (None: forward only)."""

    weight: th.Tensor
    bias: th.Tensor
    grad_weight: th.Tensor | None
    grad_bias: th.Tensor | None
    activation: type[nn.Module] | None

    def __post_init__(self) -> None:
        # A view, made once: the parameters are updated in place, so it stays current.
        self.weight_t = self.weight.t()


class _Stack:
    """A run of Dense layers: forward keeps each layer's input and output for the backward pass."""

    def __init__(self, layers: Sequence[Dense]) -> None:
        self.layers = list(layers)
        self._saved: list[tuple[th.Tensor, th.Tensor, th.Tensor]] = []

    def forward(self, x: th.Tensor, keep: bool) -> th.Tensor:
        saved = []
        for layer in self.layers:
            pre = th.addmm(layer.bias, x, layer.weight_t)  # what F.linear runs
            out = pre if layer.activation is None else ACTIVATIONS[layer.activation][0](pre)
            if keep:
                saved.append((x, pre, out))
            x = out
        if keep:
            self._saved = saved
        return x

    def backward(self, grad: th.Tensor, need_input_grad: bool) -> th.Tensor | None:
        """Write every layer's parameter gradients; return the gradient w.r.t. the stack's input."""
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            x, pre, out = self._saved[index]
            if layer.activation is not None:
                grad = ACTIVATIONS[layer.activation][1](grad, pre, out)
            # addmm's backward: input grad = grad @ W, weight grad = grad.T @ x, bias grad = grad summed.
            assert layer.grad_weight is not None and layer.grad_bias is not None, "a forward-only network"
            th.mm(grad.t(), x, out=layer.grad_weight)
            th.sum(grad, dim=0, out=layer.grad_bias)
            if index > 0 or need_input_grad:
                grad = grad.mm(layer.weight)
        return grad if need_input_grad else None


class ExplicitQNetwork:
    """Forward and backward of an SB3 ``QNetwork`` (plain MLP or our dueling head), explicitly.

    :param q_net: the network whose parameters are used in place (views; nothing is copied)
    :param grads: gradient buffers, one per ``q_net.parameters()`` entry, in that order; None for a
        forward-only network (the target network)
    """

    def __init__(self, q_net: QNetwork, grads: Sequence[th.Tensor] | None) -> None:
        params = list(q_net.parameters())
        buffers = [None] * len(params) if grads is None else list(grads)
        pairs = dict(zip((id(p) for p in params), buffers, strict=True))
        head = q_net.q_net
        self.dueling = isinstance(head, DuelingHead)
        if self.dueling:
            assert isinstance(head, DuelingHead)
            self.trunk = _Stack(_dense_layers(head.trunk, pairs))
            self.value = _Stack(_dense_layers(head.value, pairs))
            self.advantage = _Stack(_dense_layers(head.advantage, pairs))
        else:
            self.trunk = _Stack(_dense_layers(head, pairs))

    def forward(self, obs: th.Tensor, keep: bool = False) -> th.Tensor:
        """Q-values (batch, n_actions); with ``keep``, remember what :meth:`backward` needs."""
        # what SB3's preprocess_obs and FlattenExtractor do for Box obs (no-ops, skipped, for 2-D float32)
        x = obs if obs.dtype == th.float32 and obs.dim() == 2 else obs.float().flatten(1)
        features = self.trunk.forward(x, keep)
        if not self.dueling:
            return features
        value = self.value.forward(features, keep)
        advantage = self.advantage.forward(features, keep)
        return value + advantage - advantage.mean(dim=1, keepdim=True)  # DuelingHead.forward

    def backward(self, grad_q: th.Tensor) -> None:
        """Write the gradients of the last kept forward pass, given d(loss)/d(Q) (batch, n_actions)."""
        if not self.dueling:
            self.trunk.backward(grad_q, need_input_grad=False)
            return
        n_actions = grad_q.shape[1]
        # q = (value + advantage) - mean(advantage): sub, mean and add backward, as autograd runs them.
        grad_mean = grad_q.neg().sum(dim=1, keepdim=True)
        grad_advantage = grad_q + grad_mean / n_actions  # broadcast: the same values as expand_as
        grad_value = grad_q.sum(dim=1, keepdim=True)
        from_value = self.value.backward(grad_value, need_input_grad=True)
        from_advantage = self.advantage.backward(grad_advantage, need_input_grad=True)
        assert from_value is not None and from_advantage is not None
        self.trunk.backward(from_value + from_advantage, need_input_grad=False)


def _dense_layers(module: nn.Module, grads: dict[int, th.Tensor | None]) -> list[Dense]:
    """A Sequential of Linear layers, each optionally followed by one known activation."""
    if not isinstance(module, nn.Sequential):
        raise _Unsupported(type(module).__name__)
    layers: list[Dense] = []
    for child in module:
        if isinstance(child, nn.Linear) and child.bias is not None:
            layers.append(
                Dense(child.weight, child.bias, grads[id(child.weight)], grads[id(child.bias)], None)
            )
        elif type(child) in ACTIVATIONS and layers and layers[-1].activation is None:
            if not _default_activation(child):
                raise _Unsupported(repr(child))
            layers[-1].activation = type(child)
        else:
            raise _Unsupported(repr(child))
    return layers


def _default_activation(module: nn.Module) -> bool:
    """Only default-constructed activations have the constants the backward kernels above assume."""
    checks = {
        nn.ELU: lambda m: m.alpha == 1.0,
        nn.LeakyReLU: lambda m: m.negative_slope == 0.01,
        nn.GELU: lambda m: m.approximate == "none",
    }
    return checks.get(type(module), lambda m: True)(module)


class _Unsupported(Exception):
    pass


def _plain_box_input(net: nn.Module) -> bool:
    """Whether ``net`` reads float Box observations through SB3's ``FlattenExtractor``, where SB3's
    ``preprocess_obs`` is the identity: images (scaled by 1/255) and Discrete or MultiBinary
    observations (one-hot, cast) keep SB3's own preprocessing, and so do custom extractors."""
    if type(getattr(net, "features_extractor", None)) is not FlattenExtractor:
        return False
    space = getattr(net, "observation_space", None)
    return isinstance(space, spaces.Box) and bool(np.issubdtype(space.dtype, np.floating))


def explicit_network(q_net: nn.Module, grads: Sequence[th.Tensor] | None) -> ExplicitQNetwork | None:
    """An explicit version of ``q_net`` (plain or dueling), or None when it has parts this module
    does not know or an input it does not preprocess (see :func:`_plain_box_input`)."""
    if not isinstance(q_net, QNetwork) or not _plain_box_input(q_net):
        return None
    try:
        return ExplicitQNetwork(q_net, grads)
    except _Unsupported:
        return None


class ExplicitQuantileNetwork:
    """Forward and backward of sb3-contrib's plain ``QuantileNetwork`` (an MLP whose last layer
    gives ``n_quantiles * n_actions`` outputs), explicitly, as :class:`ExplicitQNetwork` does for
    Q-networks.

    :param quantile_net: the network whose parameters are used in place
    :param grads: gradient buffers, one per ``quantile_net.parameters()`` entry; None: forward only
    """

    def __init__(self, quantile_net: QuantileNetwork, grads: Sequence[th.Tensor] | None) -> None:
        params = list(quantile_net.parameters())
        buffers = [None] * len(params) if grads is None else list(grads)
        pairs = dict(zip((id(p) for p in params), buffers, strict=True))
        self.trunk = _Stack(_dense_layers(quantile_net.quantile_net, pairs))
        self.n_quantiles = quantile_net.n_quantiles
        self.n_actions = int(quantile_net.action_space.n)

    def forward(self, obs: th.Tensor, keep: bool = False) -> th.Tensor:
        """Quantiles (batch, n_quantiles, n_actions), as ``QuantileNetwork.forward`` shapes them."""
        x = obs if obs.dtype == th.float32 and obs.dim() == 2 else obs.float().flatten(1)
        return self.trunk.forward(x, keep).view(-1, self.n_quantiles, self.n_actions)

    def backward(self, grad_quantiles: th.Tensor) -> None:
        """Write the gradients of the last kept forward pass, given d(loss)/d(quantiles)."""
        self.trunk.backward(grad_quantiles.reshape(grad_quantiles.shape[0], -1), need_input_grad=False)


def explicit_quantile_network(
    quantile_net: nn.Module, grads: Sequence[th.Tensor] | None
) -> ExplicitQuantileNetwork | None:
    """An explicit version of a plain ``QuantileNetwork`` on float Box observations, else None
    (dueling quantile networks, custom extractors: the agent keeps autograd)."""
    if type(quantile_net) is not QuantileNetwork or not _plain_box_input(quantile_net):
        return None
    try:
        return ExplicitQuantileNetwork(quantile_net, grads)
    except _Unsupported:
        return None


Explicit = TypeVar("Explicit", ExplicitQNetwork, ExplicitQuantileNetwork)


class ExplicitPair(Generic[Explicit]):
    """An agent's online and target networks' explicit passes, the online one writing into the
    parameters' ``.grad``, built once and reused.

    Agents ask for them every env step (acting) and every ``train`` call, so :meth:`get` compares a
    few identities and never walks the modules; it rebuilds whenever the networks or their gradient
    tensors changed (a load, a user's ``zero_grad(set_to_none=True)``). The networks are held, not
    only their ids, so a new network can never pass for a freed one.

    :param build: :func:`explicit_network` or :func:`explicit_quantile_network`
    """

    def __init__(self, build: Callable[[nn.Module, Sequence[th.Tensor] | None], Explicit | None]) -> None:
        self._build: Callable[[nn.Module, Sequence[th.Tensor] | None], Explicit | None] = build
        self._modules: tuple[nn.Module, nn.Module] | None = None
        self._params: list[nn.Parameter] = []
        self.grads: list[th.Tensor] = []
        self.nets: tuple[Explicit, Explicit] | None = None

    def get(self, online: nn.Module, target: nn.Module) -> tuple[Explicit, Explicit] | None:
        """The explicit (online, target) pair, or None where either network is not supported."""
        modules = self._modules
        if (
            modules is not None
            and modules[0] is online
            and modules[1] is target
            and all(p.grad is g for p, g in zip(self._params, self.grads, strict=True))
        ):
            return self.nets
        params = list(online.parameters())
        for p in params:
            if p.grad is None:
                p.grad = th.zeros_like(p)
        grads: list[th.Tensor] = [p.grad for p in params]  # type: ignore[misc]
        online_net, target_net = self._build(online, grads), self._build(target, None)
        self.nets = None if online_net is None or target_net is None else (online_net, target_net)
        self._modules, self._params, self.grads = (online, target), params, grads
        return self.nets


def clip_gradients(grads: list[th.Tensor], max_norm: float) -> None:
    """``clip_grad_norm_(params, max_norm)`` over these gradients: torch's own operations (per-tensor
    norms, their norm, one clamped scale), bitwise, without its grouping and checking per call."""
    if not grads:
        return
    total_norm = th.linalg.vector_norm(th.stack(th._foreach_norm(grads, 2.0)), 2.0)
    clip_coef = max_norm / (total_norm + 1e-6)
    th._foreach_mul_(grads, th.clamp(clip_coef, max=1.0))
