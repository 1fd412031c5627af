"""The quantile Huber loss (Dabney et al. 2018, arXiv:1710.10044) and its gradient, written out.

On QR-DQN's small batches most of a step's loss time is per-operation overhead over the
(batch, N, N) pairwise terms, not arithmetic. :func:`quantile_huber_loss_and_grad` computes the
loss of sb3-contrib's ``quantile_huber_loss`` (or of our per-sample form) and its gradient with
respect to the current quantiles in eleven ATen operations where autograd's forward and backward take
about thirty, with the same roundings: the Huber terms by torch's own ``huber_loss`` kernel, the
weights |tau_i - 1{delta_ij < 0}| picked from two cached constants, and Huber's derivative as the
clamped difference, all on contiguous (batch, N, N) tensors. Loss and gradient are bitwise
autograd's over the reference formula (a test compares them).
"""

from __future__ import annotations

import torch as th

aten = th.ops.aten
_REDUCTION_NONE = 0  # torch's Reduction enum, as F.huber_loss passes it


def quantile_huber_loss_and_grad(
    current: th.Tensor,
    target: th.Tensor,
    per_sample: bool,
    weights: th.Tensor | None = None,
) -> tuple[th.Tensor, th.Tensor | None, th.Tensor]:
    """The loss, the per-sample losses (``per_sample``; else None) and d loss / d ``current``.

    ``current`` and ``target`` are (batch, N). With ``per_sample=False`` the loss is sb3-contrib's
    ``quantile_huber_loss(current, target, sum_over_quantiles=True)``; with ``per_sample=True`` it
    is the mean over samples of each sample's loss (summed over current quantiles, averaged over
    target quantiles), weighted by ``weights`` (batch,) when given (prioritized replay's
    importance-sampling weights).
    """
    batch, n_quantiles = current.shape
    n_targets = target.shape[-1]
    shape = (batch, n_quantiles, n_targets)
    delta = target.unsqueeze(-2) - current.unsqueeze(-1)  # (batch, current i, target j), contiguous
    zeros, tau, one_minus_tau = _pair_constants(shape, current)
    huber = th._C._nn.huber_loss(delta, zeros, _REDUCTION_NONE, 1.0)  # type: ignore[arg-type]  # kappa 1
    weight = th.where(th.lt(delta, zeros), one_minus_tau, tau)  # |tau_i - 1{delta_ij < 0}|, the same floats
    terms = weight * huber
    # Backward, as autograd runs it, negated (rounding is symmetric, so -(a b) = (-a) b): mean's
    # 1 / n (and PER's weight), then the weight, then Huber's derivative: the delta itself inside
    # [-1, 1] and its sign outside, i.e. the clamped delta.
    samples: th.Tensor | None = None
    if per_sample:
        samples = terms.sum(dim=-2).mean(dim=-1)
        if weights is None:
            loss = samples.mean()
            grad_samples = _minus_inverse(batch, current).expand(batch)
        else:
            loss = (weights * samples).mean()
            grad_samples = _minus_inverse(batch, current).expand(batch) * weights
        grad_terms = (grad_samples.unsqueeze(-1).expand(batch, n_targets) / n_targets).unsqueeze(-2) * weight
    else:
        loss = terms.sum(dim=-2).mean()
        grad_terms = _minus_inverse(batch * n_targets, current) * weight
    return loss, samples, (grad_terms * delta.clamp(-1.0, 1.0)).sum(dim=-1)


_CONSTANTS: dict[tuple[object, ...], tuple[th.Tensor, ...]] = {}


def _pair_constants(shape: tuple[int, int, int], like: th.Tensor) -> tuple[th.Tensor, ...]:
    """Zeros, tau_i = (i + 0.5) / N as sb3-contrib computes them, and |tau_i - 1|, each made
    contiguous at the pairwise terms' full ``shape``: elementwise operations on equal contiguous
    shapes run vectorized over all of it, where broadcast operands run short rows of N."""
    key = ("pairs", *shape, str(like.device), like.dtype)
    if key not in _CONSTANTS:
        n_quantiles = shape[1]
        tau = (th.arange(n_quantiles, device=like.device, dtype=th.float) + 0.5) / n_quantiles
        tau = tau.to(like.dtype).view(1, -1, 1)
        _CONSTANTS[key] = tuple(
            values.expand(shape).contiguous() for values in (th.zeros_like(tau), tau, th.abs(tau - 1.0))
        )
    return _CONSTANTS[key]


def _minus_inverse(count: int, like: th.Tensor) -> th.Tensor:
    """-1 / count as a 0-dim tensor on ``like``'s device and dtype (mean's backward's division)."""
    key = ("minus_inverse", count, str(like.device), like.dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = (th.full((), -1.0, device=like.device, dtype=like.dtype) / count,)
    return _CONSTANTS[key][0]
