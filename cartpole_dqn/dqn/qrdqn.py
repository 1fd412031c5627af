"""``QRDQNAgent``: sb3-contrib's ``QRDQN`` with prioritized replay, a Double target and dueling networks.

QR-DQN (Dabney et al. 2018, arXiv:1710.10044) learns ``n_quantiles`` quantiles of the return
distribution per action and acts on their mean. sb3-contrib's ``QRDQN.train`` uses an unweighted
loss, never updates priorities and lets the target network both pick and value the next action;
here only ``train``, ``_on_step`` (PER's beta) and ``_sample_action`` (the same actions, less
overhead) are overridden. With ``double_q=False`` and a plain replay buffer, ``train`` computes
``QRDQN.train``'s update bit for bit; with ``fast=True`` (the default) the quantile network's passes
run explicitly and Adam on flat buffers (``cartpole_dqn.dqn.fast``), the same numbers as stock with
torch's fused Adam; ``fast=False`` runs sb3-contrib's own code.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
import torch as th
from sb3_contrib import QRDQN
from sb3_contrib.common.utils import quantile_huber_loss
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy

from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from cartpole_dqn.dqn.divergence import DivergenceError
from cartpole_dqn.dqn.fast.explicit import ExplicitQuantileNetwork, clip_gradients, explicit_quantile_network
from cartpole_dqn.dqn.fast.optim import FlatAdam
from cartpole_dqn.dqn.fast.torch_private import fast_path_available
from cartpole_dqn.dqn.quantile_policies import DuelingQRDQNPolicy
from cartpole_dqn.dqn.replay_wiring import anneal_priority_correction, setup_with_agent_discounts
from cartpole_dqn.dqn.threads import check_torch_threads, torch_threads

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


class QRDQNAgent(QRDQN):
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
        self.double_q = double_q
        self.torch_threads = check_torch_threads(torch_threads)
        self.fast = fast and fast_path_available()
        self._explicit: tuple[ExplicitQuantileNetwork, ExplicitQuantileNetwork] | None = None
        self._explicit_key: tuple[int, ...] = ()
        self._explicit_params: tuple[list[th.Tensor], list[th.Tensor]] = ([], [])
        policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
        if self.fast and "optimizer_class" not in policy_kwargs:
            # What QRDQN sets up without an optimizer_class (torch's Adam, eps 0.01 / batch_size, as
            # the QR-DQN paper; any optimizer_kwargs replaced), as FlatAdam: bitwise, less overhead.
            policy_kwargs["optimizer_class"] = FlatAdam
            policy_kwargs["optimizer_kwargs"] = {"eps": 0.01 / kwargs.get("batch_size", QRDQN_BATCH_SIZE)}
        super().__init__(*args, **{**kwargs, "policy_kwargs": policy_kwargs})

    def learn(self, *args: Any, **kwargs: Any) -> Any:
        """SB3's ``learn`` with ``torch_threads`` CPU threads (see :mod:`cartpole_dqn.dqn.threads`)."""
        with torch_threads(self.torch_threads):
            return super().learn(*args, **kwargs)

    @property
    def prioritized(self) -> bool:
        return isinstance(self.replay_buffer, PrioritizedReplayBuffer)

    def _setup_model(self) -> None:
        if self.fast and not fast_path_available():  # a model saved where the fast path ran, loaded here
            self.fast = False
        if not self.fast and self.policy_kwargs.get("optimizer_class") is FlatAdam:
            self.policy_kwargs = {**self.policy_kwargs, "optimizer_class": th.optim.Adam}
        setup_with_agent_discounts(self, super()._setup_model, windowed=self.fast)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_explicit", "_explicit_key", "_explicit_params"]

    def _on_step(self) -> None:
        super()._on_step()
        anneal_priority_correction(self)

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """QRDQN's epsilon-greedy step (one uniform draw; then every env random, or every env
        greedy), with the same random draws and the same actions, without SB3's per-call ``predict``
        machinery (input checks, mode switching, reshapes: about as long as the forward pass)."""
        obs = self._last_obs
        if not self.fast or self.num_timesteps < learning_starts or not isinstance(obs, np.ndarray):
            return super()._sample_action(learning_starts, action_noise, n_envs)
        if np.random.rand() < self.exploration_rate:
            actions = np.array([self.action_space.sample() for _ in range(n_envs)])
        else:
            if self.policy.training or self.quantile_net.training:
                self.policy.set_training_mode(False)
            with th.no_grad():
                quantiles = self.quantile_net(th.as_tensor(obs, device=self.device))
            actions = quantiles.mean(dim=1).argmax(dim=1).reshape(-1).cpu().numpy()  # QRDQNPolicy._predict
        return actions, actions

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """sb3-contrib's update when no plug-in is on; else the weighted, Double-target version.
        Either through the explicit passes where the network allows it (``fast``)."""
        explicit = self._explicit_networks()
        if explicit is not None:
            self._train_explicit(explicit, gradient_steps, batch_size)
            return
        if not self.double_q and not self.prioritized:
            super().train(gradient_steps, batch_size)
            loss = self.logger.name_to_value.get("train/loss", 0.0)
            if not np.isfinite(loss):
                raise self._divergence(float(loss))
            return
        self._train_with_plugins(gradient_steps, batch_size)

    def _train_with_plugins(self, gradient_steps: int, batch_size: int) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.replay_buffer
        assert buffer is not None
        losses: list[float] = []
        for _ in range(gradient_steps):
            replay_data = buffer.sample(batch_size, env=self._vec_normalize_env)
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            prioritized = isinstance(replay_data, PrioritizedReplayBufferSamples)
            with th.no_grad():
                next_obs = replay_data.next_observations
                next_online = self.quantile_net(next_obs) if self.double_q else None
                target_quantiles = quantile_td_target(
                    replay_data.rewards,
                    replay_data.dones,
                    discounts,
                    self.quantile_net_target(next_obs),
                    next_online,
                )
            n_samples = replay_data.actions.shape[0]
            actions = replay_data.actions[..., None].long().expand(n_samples, self.n_quantiles, 1)
            current_quantiles = th.gather(self.quantile_net(replay_data.observations), dim=2, index=actions)
            per_sample = quantile_huber_loss_per_sample(current_quantiles.squeeze(dim=2), target_quantiles)
            if prioritized:
                assert isinstance(replay_data, PrioritizedReplayBufferSamples)
                if not bool(th.isfinite(per_sample).all()):  # before it reaches the sum tree
                    raise self._divergence(float("nan"))
                loss = (replay_data.weights.view(-1) * per_sample).mean()
            else:
                loss = per_sample.mean()
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            if self.max_grad_norm is not None:
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            if prioritized:
                assert isinstance(buffer, PrioritizedReplayBuffer)
                assert isinstance(replay_data, PrioritizedReplayBufferSamples)
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
        """The online and target quantile networks' explicit passes, writing into the parameters'
        ``.grad``; rebuilt when the networks or their gradient tensors changed; None when ``fast``
        is off or the network is not a plain quantile MLP."""
        if not self.fast:
            return None
        params, grads = self._explicit_params
        if (id(self.quantile_net), id(self.quantile_net_target)) == self._explicit_key and all(
            p.grad is g for p, g in zip(params, grads, strict=True)
        ):
            return self._explicit
        params = list(self.quantile_net.parameters())
        for p in params:
            if p.grad is None:
                p.grad = th.zeros_like(p)
        grads = [p.grad for p in params]  # type: ignore[misc]
        online = explicit_quantile_network(self.quantile_net, grads)
        target = explicit_quantile_network(self.quantile_net_target, None)
        self._explicit = None if online is None or target is None else (online, target)
        self._explicit_params = (params, grads)
        self._explicit_key = (id(self.quantile_net), id(self.quantile_net_target))
        return self._explicit

    def _train_explicit(
        self,
        nets: tuple[ExplicitQuantileNetwork, ExplicitQuantileNetwork],
        gradient_steps: int,
        batch_size: int,
    ) -> None:
        """The same update as :meth:`train`'s other paths: the networks' passes written out, and
        autograd only over the loss (from the chosen quantiles on), so the gradients are bitwise."""
        online, target = nets
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.replay_buffer
        assert buffer is not None
        stock = not self.double_q and not self.prioritized
        grads = self._explicit_params[1]
        losses: list[float] = []
        for _ in range(gradient_steps):
            replay_data = buffer.sample(batch_size, env=self._vec_normalize_env)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            prioritized = isinstance(replay_data, PrioritizedReplayBufferSamples)
            with th.no_grad():
                next_obs = replay_data.next_observations
                target_quantiles = quantile_td_target(
                    replay_data.rewards,
                    replay_data.dones,
                    discounts,
                    target.forward(next_obs),
                    online.forward(next_obs) if self.double_q else None,
                )
                all_quantiles = online.forward(replay_data.observations, keep=True)
                n_samples = replay_data.actions.shape[0]
                actions = replay_data.actions[..., None].long().expand(n_samples, self.n_quantiles, 1)
                chosen = th.gather(all_quantiles, dim=2, index=actions).squeeze(dim=2)
            current = chosen.detach().requires_grad_()
            with th.enable_grad():
                if stock:
                    per_sample = None
                    loss = quantile_huber_loss(current, target_quantiles, sum_over_quantiles=True)
                else:
                    per_sample = quantile_huber_loss_per_sample(current, target_quantiles)
                    if prioritized:
                        assert isinstance(replay_data, PrioritizedReplayBufferSamples)
                        if not bool(th.isfinite(per_sample).all()):  # before it reaches the sum tree
                            raise self._divergence(float("nan"))
                        loss = (replay_data.weights.view(-1) * per_sample).mean()
                    else:
                        loss = per_sample.mean()
                (grad_current,) = th.autograd.grad(loss, current)
            losses.append(loss.item())
            with th.no_grad():  # gather's and squeeze's backward, then the network's
                grad_all = th.zeros_like(all_quantiles).scatter_add_(2, actions, grad_current.unsqueeze(2))
                online.backward(grad_all)
                if self.max_grad_norm is not None:
                    clip_gradients(grads, self.max_grad_norm)
            self.policy.optimizer.step()
            if prioritized and per_sample is not None:
                assert isinstance(buffer, PrioritizedReplayBuffer)
                assert isinstance(replay_data, PrioritizedReplayBufferSamples)
                buffer.update_priorities(replay_data.indices, per_sample.detach().cpu().numpy())
        self._n_updates += gradient_steps
        mean_loss = float(np.mean(losses))
        if not np.isfinite(mean_loss):
            raise self._divergence(mean_loss)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", mean_loss)
        if isinstance(buffer, PrioritizedReplayBuffer):
            self.logger.record("train/per_beta", buffer.beta)

    def _divergence(self, loss: float) -> DivergenceError:
        return DivergenceError(
            f"training diverged at step {self.num_timesteps}: loss={loss} "
            f"(try a lower learning rate than {self.learning_rate})"
        )
