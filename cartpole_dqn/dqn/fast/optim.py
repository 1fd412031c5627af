"""``FlatAdam``: torch's Adam, bit for bit, on one flat buffer per quantity.

A CartPole Q-network has a few large and several tiny parameters, and torch's Adam steps them one
by one from Python, and that loop and its bookkeeping are a large share of a small network's
gradient step (figures: experiments/results/speed.md). Here the
parameters, their gradients and the two moment estimates are views of four contiguous buffers, so
one step runs each of torch's operations once over everything: the six of its default single-tensor
algorithm, or (``fused=True``) its one fused kernel, a single pass over the buffers that pays when
they do not fit in cache (a [256, 256] network's four buffers and its target network do not, on
this machine's 2 MB L2). Adam is elementwise, so either way the result is identical to torch's
own to the last bit (a test checks both). Two more things torch.optim does that cost a short run dearly are
skipped: ``add_param_group``, ``zero_grad``, ``state_dict`` and ``step`` pass through wrappers that
import ``torch._dynamo`` on first use (over a second of start-up) only to tell the compiler to keep out;
without ``torch.compile`` (which this package never calls) that import buys nothing.

State dicts are torch's own (per-parameter ``step``, ``exp_avg``, ``exp_avg_sq``), so SB3's save and
load work unchanged; after ``load_state_dict`` the state is copied back into the flat buffers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch as th
from torch.optim import Adam, Optimizer

# torch's methods without their dynamo-disabling wrappers (functools.wraps keeps the originals);
# the wrapped methods themselves where a torch version has no wrapper (agents then avoid FlatAdam:
# cartpole_dqn.dqn.fast.torch_private).
_ADD_PARAM_GROUP = getattr(Optimizer.add_param_group, "__wrapped__", Optimizer.add_param_group)
_STATE_DICT = getattr(Optimizer.state_dict, "__wrapped__", Optimizer.state_dict)
_LOAD_STATE_DICT = getattr(Optimizer.load_state_dict, "__wrapped__", Optimizer.load_state_dict)


class FlatAdam(Adam):
    """Adam (Kingma and Ba 2015) with flat parameter, gradient and moment buffers.

    Takes torch's ``Adam`` arguments; ``amsgrad``, ``maximize``, ``capturable``, ``differentiable``
    and several parameter groups or devices are not supported (ValueError). ``fused`` picks torch's
    fused CPU kernel instead of its single-tensor algorithm. Gradients are views of
    :attr:`flat_grad` (``p.grad``); ``zero_grad`` zeroes that buffer and keeps the views.
    """

    def __init__(
        self,
        params: Iterable[th.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        fused: bool = False,
        **unsupported: Any,
    ) -> None:
        if any(value for key, value in unsupported.items() if key not in ("foreach",)):
            raise ValueError(f"FlatAdam does not support {sorted(k for k, v in unsupported.items() if v)}")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
        self.fused = fused
        if len(self.param_groups) != 1:
            raise ValueError("FlatAdam takes one parameter group")
        self.params: list[th.Tensor] = list(self.param_groups[0]["params"])
        if len({(p.device, p.dtype) for p in self.params}) != 1:
            raise ValueError("FlatAdam needs every parameter on one device with one dtype")
        self._flatten()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _ADD_PARAM_GROUP(self, param_group)

    def _flatten(self) -> None:
        """Move the parameters, gradients and moments into flat buffers; keep views in their place."""
        params = self.params
        self.flat_param = th.cat([p.detach().reshape(-1) for p in params])
        self.flat_grad = th.zeros_like(self.flat_param)
        self.flat_exp_avg = th.zeros_like(self.flat_param)
        self.flat_exp_avg_sq = th.zeros_like(self.flat_param)
        self.step_count = th.zeros((), dtype=th.float32)
        self.grads = self._views(self.flat_grad)
        for p, view, grad in zip(params, self._views(self.flat_param), self.grads, strict=True):
            p.data = view
            p.grad = grad
        self._point_state()

    def _views(self, flat: th.Tensor) -> list[th.Tensor]:
        views, offset = [], 0
        for p in self.params:
            views.append(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        return views

    def _point_state(self) -> None:
        moments = zip(self._views(self.flat_exp_avg), self._views(self.flat_exp_avg_sq), strict=True)
        for p, (exp_avg, exp_avg_sq) in zip(self.params, moments, strict=True):
            self.state[p] = {"step": self.step_count, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}

    def _still_flat(self) -> bool:
        """False once something replaced a parameter's storage or gradient (e.g. ``module.to``)."""
        first = self.params[0]
        return (
            first.data_ptr() == self.flat_param.data_ptr()
            and first.grad is not None
            and first.grad.data_ptr() == self.flat_grad.data_ptr()
        )

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the flat gradient buffer (the gradients stay its views, whatever ``set_to_none``)."""
        self.flat_grad.zero_()

    @th.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One Adam step over the flat buffers: torch's fused kernel, or its single-tensor algorithm."""
        loss = None
        if closure is not None:
            with th.enable_grad():
                loss = closure()
        if not self._still_flat():
            self._reflatten()
        group = self.param_groups[0]
        lr, (beta1, beta2), eps, weight_decay = (
            group["lr"],
            group["betas"],
            group["eps"],
            group["weight_decay"],
        )
        grad, exp_avg, exp_avg_sq = self.flat_grad, self.flat_exp_avg, self.flat_exp_avg_sq
        if self.fused:  # torch.optim.adam._fused_adam: the step counters, then one kernel call
            self.step_count += 1
            th._fused_adam_(
                [self.flat_param],
                [grad],
                [exp_avg],
                [exp_avg_sq],
                [],
                [self.step_count],
                amsgrad=False,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=weight_decay,
                eps=eps,
                maximize=False,
            )
            return loss
        self.step_count += 1
        step = self.step_count.item()
        if weight_decay != 0:
            grad = grad.add(self.flat_param, alpha=weight_decay)
        # The lines of torch.optim.adam._single_tensor_adam (non-capturable, non-amsgrad), in its order.
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        self.flat_param.addcdiv_(exp_avg, denom, value=-step_size)
        return loss

    # Optimizer.__init__ wraps ``step`` with its hook and profiler machinery unless marked hooked;
    # step hooks are not supported here (the wrapper is a measurable share of a CartPole gradient step).
    step.hooked = True  # type: ignore[attr-defined]

    def _reflatten(self) -> None:
        """Rebuild the flat buffers from whatever the parameters, gradients and state now hold."""
        grads = [p.grad for p in self.params]
        saved = [dict(self.state.get(p, {})) for p in self.params]
        self._flatten()
        for view, grad in zip(self.grads, grads, strict=True):
            if grad is not None:
                view.copy_(grad)
        exp_avgs, exp_avg_sqs = self._views(self.flat_exp_avg), self._views(self.flat_exp_avg_sq)
        for state, exp_avg, exp_avg_sq in zip(saved, exp_avgs, exp_avg_sqs, strict=True):
            if "exp_avg" in state:
                exp_avg.copy_(state["exp_avg"])
                exp_avg_sq.copy_(state["exp_avg_sq"])
        steps = [float(state["step"]) for state in saved if "step" in state]
        self.step_count.fill_(steps[0] if steps else 0.0)

    def state_dict(self) -> dict[str, Any]:
        return _STATE_DICT(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _LOAD_STATE_DICT(self, state_dict)
        self.params = list(self.param_groups[0]["params"])
        self._reflatten()
