"""The quantile Huber loss (Dabney et al. 2018, arXiv:1710.10044) and its gradient, written out.

On QR-DQN's small batches most of a step's loss time is autograd's graph over the (batch, N, N)
pairwise terms, not arithmetic. :func:`quantile_huber_loss_and_grad` runs the forward ops of
sb3-contrib's ``quantile_huber_loss`` (or of our per-sample form) and then the ops autograd's
backward runs for them, in its order (mean's ``1 / n``, the weight, ``where``'s split, ``abs``'s
sign and ``pow``'s ``2 x``, the broadcast sum): the loss and the gradient with respect to the
current quantiles are bitwise autograd's (a test compares them), without its graph.
"""

from __future__ import annotations

import torch as th


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
    tau = _midpoints(n_quantiles, current.device)
    delta = target.unsqueeze(-2) - current.unsqueeze(-1)  # (batch, current i, target j)
    abs_delta = th.abs(delta)
    huber = th.where(abs_delta > 1, abs_delta - 0.5, delta**2 * 0.5)
    weight = th.abs(tau - (delta < 0).float())
    terms = weight * huber
    # Backward from here, as autograd runs it, negated (rounding is symmetric, so -(a b) = (-a) b):
    # mean's 1 / n (and PER's weight), then the weight; where's two branches, abs's sgn and pow's
    # 2 x after 0.5, leave the delta itself inside [-1, 1] and its sign outside: clamp, bitwise.
    minus_one = th.full((), -1.0, device=current.device, dtype=current.dtype)
    samples: th.Tensor | None = None
    if per_sample:
        samples = terms.sum(dim=-2).mean(dim=-1)
        if weights is None:
            loss = samples.mean()
            grad_samples = (minus_one / batch).expand(batch)
        else:
            loss = (weights * samples).mean()
            grad_samples = (minus_one / batch).expand(batch) * weights
        grad_terms = (grad_samples.unsqueeze(-1).expand(batch, n_targets) / n_targets).unsqueeze(-2)
    else:
        loss = terms.sum(dim=-2).mean()
        grad_terms = (minus_one / (batch * n_targets)).expand(batch, 1, n_targets)
    grad_current = ((grad_terms * weight) * delta.clamp(-1.0, 1.0)).sum(dim=-1)
    return loss, samples, grad_current


_MIDPOINTS: dict[tuple[int, str], th.Tensor] = {}


def _midpoints(n_quantiles: int, device: th.device) -> th.Tensor:
    """tau_i = (i + 0.5) / N as sb3-contrib computes them, shaped (1, N, 1); made once per N."""
    key = (n_quantiles, str(device))
    if key not in _MIDPOINTS:
        tau = (th.arange(n_quantiles, device=device, dtype=th.float) + 0.5) / n_quantiles
        _MIDPOINTS[key] = tau.view(1, -1, 1)
    return _MIDPOINTS[key]
