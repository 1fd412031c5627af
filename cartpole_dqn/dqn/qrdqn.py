"""``QRDQNAgent``: sb3-contrib's ``QRDQN`` with prioritized replay, a Double target and dueling networks.

QR-DQN (Dabney et al. 2018, arXiv:1710.10044) learns ``n_quantiles`` quantiles of the return
distribution per action and acts on their mean. sb3-contrib's ``QRDQN.train`` uses an unweighted
loss, never updates priorities and lets the target network both pick and value the next action;
here ``train`` and ``_sample_action`` (the same actions, less overhead) are overridden, and
:class:`~cartpole_dqn.dqn.agent_switches.AgentSwitches` adds ``_on_step`` (target update, PER's beta)
and ``_store_transition`` as for ``DQNAgent``. With ``double_q=False`` and a plain replay buffer,
``train`` computes ``QRDQN.train``'s update bit for bit; with ``fast=True`` (the default) the
quantile network's passes run explicitly and Adam on flat buffers with torch's fused kernel
(``cartpole_dqn.dqn.fast``), the same numbers as stock with torch's fused Adam (stock's default
single-tensor Adam rounds its step differently); ``fast=False`` runs sb3-contrib's
own code.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch as th
from sb3_contrib import QRDQN
from sb3_contrib.common.utils import quantile_huber_loss
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from cartpole_dqn.dqn.agent_switches import AgentSwitches
from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from cartpole_dqn.dqn.divergence import DivergenceError
from cartpole_dqn.dqn.fast.denormals import flushed_denormals
from cartpole_dqn.dqn.fast.explicit import (
    ExplicitPair,
    ExplicitQuantileNetwork,
    clip_gradients,
    explicit_quantile_network,
)
from cartpole_dqn.dqn.fast.quantile_loss import quantile_huber_loss_and_grad
from cartpole_dqn.dqn.quantile_policies import DuelingQRDQNPolicy

QRDQN_BATCH_SIZE = inspect.signature(QRDQN.__init__).parameters["batch_size"].default


def quantile_td_target(
    rewards: th.Tensor,
    dones: th.Tensor,
    discounts: th.Tensor | float,
    next_quantiles_target: th.Tensor,
    next_quantiles_online: th.Tensor | None,
) -> th.Tensor:
    """The target quantiles, shape (batch, n_quantiles), from next-state quantiles (batch, n_quantiles,
    n_actions).

    The next action a* maximizes the mean over quantiles (the Q-value). With
    ``next_quantiles_online`` given, the Double target (van Hasselt et al. 2016, arXiv:1509.06461):
    the online net's mean picks a*, the target net's quantiles at a* are the target. Without it,
    sb3-contrib's: the target net both picks and values a*.
    """
    picker = next_quantiles_target if next_quantiles_online is None else next_quantiles_online
    n_quantiles = next_quantiles_target.shape[1]
    greedy = picker.mean(dim=1, keepdim=True).argmax(dim=2, keepdim=True)
    greedy = greedy.expand(next_quantiles_target.shape[0], n_quantiles, 1)
    next_quantiles = next_quantiles_target.gather(dim=2, index=greedy).squeeze(dim=2)
    return rewards + (1 - dones) * discounts * next_quantiles


def quantile_huber_loss_per_sample(current: th.Tensor, target: th.Tensor) -> th.Tensor:
    """The quantile Huber loss of each sample, shape (batch,); their mean is sb3-contrib's
    ``quantile_huber_loss(current, target, sum_over_quantiles=True)``.

    Both inputs are (batch, n_quantiles). Pairwise TD errors delta_ij = target_j - current_i; Huber
    (kappa 1) weighted by |tau_i - 1{delta_ij < 0}| with tau_i = (i + 0.5) / N the quantile
    midpoints; summed over the current quantiles i, averaged over the target quantiles j (Dabney et
    al. 2018, eq. 10).
    """
    n_quantiles = current.shape[-1]
    tau = (th.arange(n_quantiles, device=current.device, dtype=th.float) + 0.5) / n_quantiles
    delta = target.unsqueeze(-2) - current.unsqueeze(-1)  # (batch, current i, target j)
    abs_delta = th.abs(delta)
    huber = th.where(abs_delta > 1, abs_delta - 0.5, delta**2 * 0.5)
    loss = th.abs(tau.view(1, -1, 1) - (delta.detach() < 0).float()) * huber
    return loss.sum(dim=-2).mean(dim=-1)


class QRDQNAgent(AgentSwitches, QRDQN):
    """sb3-contrib ``QRDQN`` plus prioritized replay and a Double target; every SB3 tool keeps working.

    :param double_q: the Double target (online net's mean picks a*, target net's quantiles value it)
    :param fast: the speed path: explicit passes of a plain quantile network, FlatAdam (torch's
        fused Adam), the windowed replay buffer and a lean epsilon-greedy step (the same numbers);
        False runs sb3-contrib's own code
    :param torch_threads: torch CPU threads while ``learn`` runs (then restored): 1, as the command
        line uses, is fastest for the small MLPs of classic-control tasks; None leaves torch's own
        setting (one per core) alone
    All other parameters are sb3-contrib ``QRDQN``'s. Pass
    ``replay_buffer_class=PrioritizedReplayBuffer`` for prioritized replay (Schaul et al. 2016,
    arXiv:1511.05952): each sample's loss is weighted by its importance-sampling weight, and its
    priority becomes its own quantile Huber loss, the distributional loss the update minimizes, as
    Rainbow prioritizes by its distributional (KL) loss rather than by a scalar TD error (Hessel et
    al. 2018, arXiv:1710.02298); beta is annealed to 1 over the training budget, and ``n_steps`` is
    handed to the buffer. Policies: sb3-contrib's ``"MlpPolicy"`` and our ``"DuelingMlpPolicy"``
    (:class:`~cartpole_dqn.dqn.quantile_policies.DuelingQRDQNPolicy`).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        **QRDQN.policy_aliases,
        "DuelingMlpPolicy": DuelingQRDQNPolicy,
    }

    def __init__(
        self,
        *args: Any,
        double_q: bool = False,
        torch_threads: int | None = 1,
        fast: bool = True,
        **kwargs: Any,
    ) -> None:
        self._explicit_pair: ExplicitPair[ExplicitQuantileNetwork] = ExplicitPair(explicit_quantile_network)
        super().__init__(*args, double_q=double_q, torch_threads=torch_threads, fast=fast, **kwargs)

    def _flat_adam_kwargs(
        self, policy_kwargs: dict[str, Any], agent_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """What QRDQN sets up without an optimizer_class (torch's Adam, eps 0.01 / batch_size, as the
        QR-DQN paper; any optimizer_kwargs replaced), as FlatAdam with torch's fused kernel, as
        DQNAgent's: bitwise torch's fused Adam, less overhead."""
        return {"eps": 0.01 / agent_kwargs.get("batch_size", QRDQN_BATCH_SIZE), "fused": True}

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_explicit_pair"]

    def _online_and_target(self) -> tuple[th.nn.Module, th.nn.Module]:
        return self.quantile_net, self.quantile_net_target

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """QRDQN's epsilon-greedy step (one uniform draw; then every env random, or every env
        greedy), with the same random draws and the same actions, without SB3's per-call ``predict``
        machinery (input checks, mode switching, reshapes: about as long as the forward pass); the
        quantiles from the explicit forward pass where the network has one (the same numbers)."""
        obs = self._last_obs
        if not self.fast or self.num_timesteps < learning_starts or not isinstance(obs, np.ndarray):
            return super()._sample_action(learning_starts, action_noise, n_envs)
        if np.random.rand() < self.exploration_rate:
            actions = np.array([self.action_space.sample() for _ in range(n_envs)])
        else:
            if self.policy.training or self.quantile_net.training:
                self.policy.set_training_mode(False)
            explicit = self._explicit_networks()
            forward = self.quantile_net if explicit is None else explicit[0].forward
            with th.inference_mode():
                quantiles = forward(th.as_tensor(obs, device=self.device))
                # as QRDQNPolicy._predict
                actions = quantiles.mean(dim=1).argmax(dim=1).reshape(-1).cpu().numpy()
        return actions, actions

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """sb3-contrib's update when no plug-in is on; else the weighted, Double-target version.
        Either through the explicit passes where the network allows it (``fast``), then with
        denormal floats flushed to zero meanwhile (:mod:`cartpole_dqn.dqn.fast.denormals`)."""
        explicit = self._explicit_networks()
        if explicit is None and not self.double_q and not self.prioritized:
            super().train(gradient_steps, batch_size)
            loss = self.logger.name_to_value.get("train/loss", 0.0)
            if not np.isfinite(loss):
                raise self._divergence(float(loss))
            return
        if not self.fast:
            self._train(gradient_steps, batch_size, explicit)
            return
        with flushed_denormals():
            self._train(gradient_steps, batch_size, explicit)

    def _train(
        self,
        gradient_steps: int,
        batch_size: int,
        explicit: tuple[ExplicitQuantileNetwork, ExplicitQuantileNetwork] | None,
    ) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.replay_buffer
        assert buffer is not None
        losses: list[float] = []
        for _ in range(gradient_steps):
            replay_data = buffer.sample(batch_size, env=self._vec_normalize_env)
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            if explicit is not None:
                loss, per_sample = self._gradients_explicit(explicit, replay_data, discounts)
                if self.max_grad_norm is not None:
                    clip_gradients(self._explicit_pair.grads, self.max_grad_norm)
            else:
                loss, per_sample = self._gradients_autograd(replay_data, discounts)
                if self.max_grad_norm is not None:
                    th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            losses.append(loss)
            self.policy.optimizer.step()
            if isinstance(replay_data, PrioritizedReplayBufferSamples) and per_sample is not None:
                assert isinstance(buffer, PrioritizedReplayBuffer)
                buffer.update_priorities(replay_data.indices, per_sample.detach().cpu().numpy())
        self._n_updates += gradient_steps
        mean_loss = float(np.mean(losses))
        if not np.isfinite(mean_loss):
            raise self._divergence(mean_loss)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", mean_loss)
        if isinstance(buffer, PrioritizedReplayBuffer):
            self.logger.record("train/per_beta", buffer.beta)

    def _explicit_networks(self) -> tuple[ExplicitQuantileNetwork, ExplicitQuantileNetwork] | None:
        """The online and target quantile networks' explicit passes (:class:`ExplicitPair`), writing
        into the parameters' ``.grad``; None when ``fast`` is off or the network is not a plain
        quantile MLP."""
        return self._explicit_pair.get(self.quantile_net, self.quantile_net_target) if self.fast else None

    def _target_quantiles(
        self,
        replay_data: ReplayBufferSamples,
        discounts: th.Tensor | float,
        online: Callable[[th.Tensor], th.Tensor],
        target: Callable[[th.Tensor], th.Tensor],
    ) -> th.Tensor:
        """The TD target quantiles, the networks' forward passes given (modules or explicit passes)."""
        next_obs = replay_data.next_observations
        return quantile_td_target(
            replay_data.rewards,
            replay_data.dones,
            discounts,
            target(next_obs),
            online(next_obs) if self.double_q else None,
        )

    def _loss(
        self, current: th.Tensor, target: th.Tensor, replay_data: ReplayBufferSamples
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """The loss to minimize and, where it is built from them, the per-sample losses.

        sb3-contrib's own ``quantile_huber_loss`` when no plug-in is on (bitwise its update); the
        per-sample losses, weighted by PER's importance-sampling weights, otherwise.
        """
        if not self.double_q and not self.prioritized:
            return quantile_huber_loss(current, target, sum_over_quantiles=True), None
        per_sample = quantile_huber_loss_per_sample(current, target)
        if isinstance(replay_data, PrioritizedReplayBufferSamples):
            if not bool(th.isfinite(per_sample).all()):  # before it reaches the sum tree
                raise self._divergence(float("nan"))
            return (replay_data.weights.view(-1) * per_sample).mean(), per_sample
        return per_sample.mean(), per_sample

    def _gradients_explicit(
        self,
        nets: tuple[ExplicitQuantileNetwork, ExplicitQuantileNetwork],
        replay_data: ReplayBufferSamples,
        discounts: th.Tensor | float,
    ) -> tuple[float, th.Tensor | None]:
        """The loss and its gradients (in ``.grad``): the networks' passes and the loss's gradient
        written out (:mod:`cartpole_dqn.dqn.fast.quantile_loss`), bitwise autograd's."""
        online, target = nets
        with th.no_grad():
            target_quantiles = self._target_quantiles(replay_data, discounts, online.forward, target.forward)
            all_quantiles = online.forward(replay_data.observations, keep=True)
            actions = self._action_index(replay_data)
            current = th.gather(all_quantiles, dim=2, index=actions).squeeze(dim=2)
            weights = None
            if isinstance(replay_data, PrioritizedReplayBufferSamples):
                weights = replay_data.weights.view(-1)
            loss, per_sample, grad_current = quantile_huber_loss_and_grad(
                current, target_quantiles, per_sample=self.double_q or self.prioritized, weights=weights
            )
            if weights is not None and per_sample is not None and not bool(th.isfinite(per_sample).all()):
                raise self._divergence(float("nan"))  # before it reaches the sum tree
            # gather's and squeeze's backward, then the network's
            online.backward(th.zeros_like(all_quantiles).scatter_add_(2, actions, grad_current.unsqueeze(2)))
        return loss.item(), per_sample

    def _gradients_autograd(
        self, replay_data: ReplayBufferSamples, discounts: th.Tensor | float
    ) -> tuple[float, th.Tensor | None]:
        """The same through autograd: for networks the explicit passes do not know (dueling)."""
        with th.no_grad():
            target_quantiles = self._target_quantiles(
                replay_data, discounts, self.quantile_net, self.quantile_net_target
            )
        current = th.gather(
            self.quantile_net(replay_data.observations), dim=2, index=self._action_index(replay_data)
        ).squeeze(dim=2)
        loss, per_sample = self._loss(current, target_quantiles, replay_data)
        self.policy.optimizer.zero_grad()
        loss.backward()
        return loss.item(), per_sample

    def _action_index(self, replay_data: ReplayBufferSamples) -> th.Tensor:
        """The taken actions as a gather index over (batch, n_quantiles, n_actions)."""
        n_samples = replay_data.actions.shape[0]
        return replay_data.actions[..., None].long().expand(n_samples, self.n_quantiles, 1)

    def _divergence(self, loss: float) -> DivergenceError:
        return DivergenceError(
            f"training diverged at step {self.num_timesteps}: loss={loss} "
            f"(try a lower learning rate than {self.learning_rate})"
        )
