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

from typing import NamedTuple

import torch as th

_REDUCTION_NONE = 0  # torch's Reduction enum, as F.huber_loss passes it
_huber_loss = th._C._nn.huber_loss  # what F.huber_loss calls (reduction as an int), without its checks


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
    delta = target.unsqueeze(-2) - current.unsqueeze(-1)  # (batch, current i, target j), contiguous
    batch, _, n_targets = shape = delta.shape
    constants = _CONSTANTS.get((shape, delta.device, delta.dtype)) or _pair_constants(delta)
    weight = th.where(th.lt(delta, constants.zeros), constants.one_minus_tau, constants.tau)
    # weight * huber, in place (a product is the same float either way round), as are the backward's
    # products below: fewer (batch, N, N) tensors for the cache to hold.
    huber = _huber_loss(delta, constants.zeros, _REDUCTION_NONE, 1.0)  # type: ignore[arg-type]  # kappa 1
    terms = huber.mul_(weight)
    # Backward, as autograd runs it, negated (rounding is symmetric, so -(a b) = (-a) b): mean's
    # 1 / n (and PER's weight), then the weight, then Huber's derivative: the delta itself inside
    # [-1, 1] and its sign outside, i.e. the clamped delta. Every mean is torch's CPU mean's own
    # two steps, a sum and a division by the count, here by a cached tensor.
    samples: th.Tensor | None = None
    if per_sample:
        samples = terms.sum(dim=-2).sum(dim=-1).div_(constants.n_targets)
        minus_inverse = constants.minus_inverse_batch.expand(batch)
        if weights is None:
            loss = samples.sum().div_(constants.batch)
            grad_samples = minus_inverse
        else:
            loss = (weights * samples).sum().div_(constants.batch)
            grad_samples = minus_inverse * weights
        grad_terms = weight.mul_(
            (grad_samples.unsqueeze(-1).expand(batch, n_targets) / n_targets).unsqueeze(-2)
        )
    else:
        loss = terms.sum(dim=-2).sum().div_(constants.batch_targets)
        grad_terms = weight.mul_(constants.minus_inverse_batch_targets)
    return loss, samples, grad_terms.mul_(delta.clamp_(-1.0, 1.0)).sum(dim=-1)


class _PairConstants(NamedTuple):
    """What the loss needs for one (batch, N, N) shape, made once: zeros, tau_i = (i + 0.5) / N as
    sb3-contrib computes them and |tau_i - 1|, each contiguous at the full shape (elementwise
    operations on equal contiguous shapes run vectorized over all of it, where broadcast operands
    run short rows of N); the counts means divide by, and -1 / count as mean's backward computes it."""

    zeros: th.Tensor
    tau: th.Tensor
    one_minus_tau: th.Tensor
    batch: th.Tensor
    n_targets: th.Tensor
    batch_targets: th.Tensor
    minus_inverse_batch: th.Tensor
    minus_inverse_batch_targets: th.Tensor


_CONSTANTS: dict[tuple[th.Size, th.device, th.dtype], _PairConstants] = {}


def _pair_constants(delta: th.Tensor) -> _PairConstants:
    shape, device, dtype = delta.shape, delta.device, delta.dtype
    batch, n_quantiles, n_targets = shape
    tau = (th.arange(n_quantiles, device=device, dtype=th.float) + 0.5) / n_quantiles
    tau = tau.to(dtype).view(1, -1, 1)
    zeros, tau, one_minus_tau = (
        values.expand(shape).contiguous() for values in (th.zeros_like(tau), tau, th.abs(tau - 1.0))
    )
    minus_one = th.full((), -1.0, device=device, dtype=dtype)
    counts = [th.full((), float(count), device=device, dtype=dtype) for count in (batch, n_targets)]
    constants = _PairConstants(
        zeros,
        tau,
        one_minus_tau,
        counts[0],
        counts[1],
        th.full((), float(batch * n_targets), device=device, dtype=dtype),
        minus_one / batch,
        minus_one / (batch * n_targets),
    )
    _CONSTANTS[(shape, device, dtype)] = constants
    return constants
