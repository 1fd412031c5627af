"""Every private torch API the fast path uses, named in one place.

The fast path (explicit forward/backward passes, :class:`~cartpole_dqn.dqn.fast.optim.FlatAdam`, foreach
target updates and gradient clipping) calls torch functions that are not public API and may move
between torch releases. Each is listed here. An agent built with ``fast=True`` checks them first;
when one is missing (another torch version), it runs the plain path, SB3's own code, and says so in
one warning, instead of failing in the middle of training.
"""

from __future__ import annotations

import functools
from typing import Any

PRIVATE_APIS = (
    "torch._foreach_mul_",  # the target update and gradient clipping, over parameter lists
    "torch._foreach_add_",
    "torch._foreach_norm",
    "torch._fused_adam_",  # FlatAdam(fused=True)
    "torch.ops.aten.smooth_l1_loss_backward.default",  # the explicit backward pass
    "torch.ops.aten.threshold_backward.default",
    "torch.ops.aten.tanh_backward.default",
    "torch.ops.aten.elu_backward.default",
    "torch.ops.aten.leaky_relu_backward.default",
    "torch.ops.aten.gelu_backward.default",
    "torch.ops.aten.silu_backward.default",
    "torch.optim.Optimizer.add_param_group.__wrapped__",  # FlatAdam without the dynamo wrappers
    "torch.optim.Optimizer.state_dict.__wrapped__",
    "torch.optim.Optimizer.load_state_dict.__wrapped__",
)


def resolve(path: str) -> Any | None:
    """The object at a dotted ``torch...`` path, or None when any part of it is missing."""
    import torch

    value: Any = torch
    for part in path.split(".")[1:]:
        try:
            value = getattr(value, part)
        except (AttributeError, RuntimeError):  # torch.ops raises RuntimeError for unknown operators
            return None
    return value


def missing_private_apis() -> list[str]:
    """The private APIs this torch lacks (empty: the fast path can run)."""
    return [path for path in PRIVATE_APIS if resolve(path) is None]


@functools.cache
def _warned(missing: tuple[str, ...]) -> bool:
    import warnings

    import torch

    warnings.warn(
        f"cartpole_dqn: torch {torch.__version__} lacks {', '.join(missing)}; the agents run the plain "
        "(SB3) path, slower but the same algorithm",
        RuntimeWarning,
        stacklevel=4,
    )
    return True


def fast_path_available() -> bool:
    """True when every private API is there; else warns once (per set of missing names), False."""
    missing = tuple(missing_private_apis())
    if missing:
        _warned(missing)
    return not missing
