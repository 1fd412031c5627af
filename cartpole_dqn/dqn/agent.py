"""``DQNAgent``: SB3's ``DQN`` with a Double-DQN target and prioritized-replay support.

SB3's seams are overridden, never its training loop: ``train`` (the update: Double-DQN target, PER
weights and priorities), ``_sample_action`` (epsilon-greedy) and ``_excluded_save_params``;
``_setup_model`` (the replay buffer's wiring), ``learn`` (torch threads), ``_on_step`` (target
update, epsilon, PER's beta) and ``_store_transition`` come from
:class:`~cartpole_dqn.dqn.agent_switches.AgentSwitches`. With ``fast=False`` each runs SB3's own
code; with ``double_q=False`` and a plain replay buffer the update is exactly SB3's vanilla one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.nn import functional as F

from cartpole_dqn.dqn.agent_switches import AgentSwitches
from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from cartpole_dqn.dqn.divergence import DivergenceError
from cartpole_dqn.dqn.fast.denormals import flushed_denormals
from cartpole_dqn.dqn.fast.explicit import ExplicitPair, ExplicitQNetwork, clip_gradients, explicit_network
from cartpole_dqn.dqn.policies import DuelingDQNPolicy

aten = th.ops.aten
_ONE = th.ones(())  # the gradient loss.backward() starts from
_INVERSE_COUNTS: dict[int, th.Tensor] = {}  # n -> 1 / n, as mean's backward computes it


def _inverse_count(n: int) -> th.Tensor:
    """``1 / n`` as a 0-dim float32 CPU tensor, by the division mean's backward runs (so the same
    float), cached: one multiplication then replaces mean's backward's expand and divide."""
    inverse = _INVERSE_COUNTS.get(n)
    if inverse is None:
        inverse = _INVERSE_COUNTS[n] = _ONE / n
    return inverse


def td_target(
    rewards: th.Tensor,
    dones: th.Tensor,
    discounts: th.Tensor | float,
    next_q_target: th.Tensor,
    next_q_online: th.Tensor | None,
) -> th.Tensor:
    """The bootstrapped TD target, shape (batch, 1).

    With ``next_q_online`` given, the Double-DQN target (van Hasselt et al. 2016, arXiv:1509.06461):
    the online net picks the next action and the target net values it, which removes the
    max-operator's overestimation bias. Without it, vanilla DQN's max over the target net.
    """
    if next_q_online is None:
        next_values = next_q_target.amax(dim=1, keepdim=True)  # max's values, bitwise, without indices
    else:
        next_actions = next_q_online.argmax(dim=1, keepdim=True)
        next_values = th.gather(next_q_target, dim=1, index=next_actions)
    return rewards + (1 - dones) * discounts * next_values


class DQNAgent(AgentSwitches, DQN):
    """SB3 ``DQN`` plus Double-DQN and prioritized replay; every other SB3 tool keeps working.

    :param double_q: use the Double-DQN target (van Hasselt et al. 2016)
    :param fast: the speed path (explicit passes, FlatAdam, windowed replay, leaner per-step hooks;
        bitwise the same update): on by default; False runs SB3's own code for every step, and so
        does an agent whose torch lacks one of the private APIs it needs
        (:mod:`cartpole_dqn.dqn.fast.torch_private`), with one warning
    :param torch_threads: torch CPU threads while ``learn`` runs (then restored): 1, as the command
        line uses, is fastest for the small MLPs of classic-control tasks; None leaves torch's own
        setting (one per core) alone
    All other parameters are SB3 ``DQN``'s. Pass ``replay_buffer_class=PrioritizedReplayBuffer``
    for prioritized replay: the loss is then weighted by the importance-sampling weights, the
    priorities are updated from |TD error| after every gradient step, and beta is annealed to 1
    over the training budget. ``n_steps`` is handed to the prioritized buffer as well.
    Policies: SB3's ``"MlpPolicy"`` and our ``"DuelingMlpPolicy"`` (:class:`DuelingDQNPolicy`).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        **DQN.policy_aliases,
        "DuelingMlpPolicy": DuelingDQNPolicy,
    }

    def __init__(
        self,
        *args: Any,
        double_q: bool = False,
        torch_threads: int | None = 1,
        fast: bool = True,
        **kwargs: Any,
    ) -> None:
        self._explicit_pair: ExplicitPair[ExplicitQNetwork] = ExplicitPair(explicit_network)
        super().__init__(*args, double_q=double_q, torch_threads=torch_threads, fast=fast, **kwargs)

    def _flat_adam_kwargs(
        self, policy_kwargs: dict[str, Any], agent_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """The user's optimizer_kwargs, else torch's fused Adam (bitwise SB3's Adam, less overhead)."""
        return policy_kwargs.get("optimizer_kwargs", {"fused": True})

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_explicit_pair"]

    def _online_and_target(self) -> tuple[th.nn.Module, th.nn.Module]:
        return self.q_net, self.q_net_target

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Epsilon-greedy actions without SB3's per-call ``predict`` machinery (input checks, reshapes).

        The same random draws as SB3 with one env (one uniform number, then an action sample when
        exploring); with several envs, each env draws its own epsilon (SB3 draws one for all). The
        greedy actions come from the explicit forward pass: the same Q-values, the same argmax.
        """
        nets = self._explicit_networks() if isinstance(self._last_obs, np.ndarray) else None
        if self.num_timesteps < learning_starts or nets is None:  # (None whenever fast=False)
            return super()._sample_action(learning_starts, action_noise, n_envs)
        explore = np.random.rand(n_envs) < self.exploration_rate
        actions = np.zeros(n_envs, dtype=np.int64)
        if not explore.all():
            with th.inference_mode():
                q_values = nets[0].forward(th.as_tensor(self._last_obs, device=self.device))
                actions[:] = q_values.argmax(dim=1).cpu().numpy()
        for env in np.flatnonzero(explore):
            actions[env] = self.action_space.sample()
        return actions, actions

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's DQN update (plus Double-DQN and PER); on the fast path with denormal floats
        flushed to zero meanwhile (:mod:`cartpole_dqn.dqn.fast.denormals`)."""
        if not self.fast:  # SB3's update through autograd, Double-DQN and PER included
            self._train(gradient_steps, batch_size)
            return
        with flushed_denormals():
            self._train(gradient_steps, batch_size)

    def _train(self, gradient_steps: int, batch_size: int) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.replay_buffer
        assert buffer is not None
        prioritized = isinstance(buffer, PrioritizedReplayBuffer)
        explicit = self._explicit_networks()

        losses: list[float] = []
        q_sum = th.zeros((), device=self.device)
        for _ in range(gradient_steps):
            replay_data = buffer.sample(batch_size, env=self._vec_normalize_env)
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            weights = replay_data.weights if isinstance(replay_data, PrioritizedReplayBufferSamples) else None
            if explicit is not None:
                loss, current_q_values, td_errors = self._gradients_explicit(
                    explicit, replay_data, discounts, weights
                )
                clip_gradients(self._explicit_pair.grads, self.max_grad_norm)
            else:
                loss, current_q_values, td_errors = self._gradients_autograd(replay_data, discounts, weights)
                # the gradients backward() just wrote (zero_grad may have replaced the tensors), as SB3
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            losses.append(loss)
            q_sum += current_q_values.mean()
            self.policy.optimizer.step()

            if td_errors is not None:
                assert isinstance(buffer, PrioritizedReplayBuffer)
                assert isinstance(replay_data, PrioritizedReplayBufferSamples)
                buffer.update_priorities(replay_data.indices, td_errors)

        self._n_updates += gradient_steps
        mean_loss = float(np.mean(losses))
        q_mean = float(q_sum.item()) / max(gradient_steps, 1)
        if not (np.isfinite(mean_loss) and np.isfinite(q_mean)):
            raise self._divergence(mean_loss, q_mean)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", mean_loss)
        self.logger.record("train/q_mean", q_mean)
        if prioritized:
            assert isinstance(buffer, PrioritizedReplayBuffer)
            self.logger.record("train/per_beta", buffer.beta)

    def _explicit_networks(self) -> tuple[ExplicitQNetwork, ExplicitQNetwork] | None:
        """The online and target networks' explicit passes (:class:`ExplicitPair`), writing into the
        parameters' ``.grad``; None for networks they do not support, and when ``fast=False``."""
        return self._explicit_pair.get(self.q_net, self.q_net_target) if self.fast else None

    def _gradients_explicit(
        self,
        nets: tuple[ExplicitQNetwork, ExplicitQNetwork],
        replay_data: ReplayBufferSamples,
        discounts: th.Tensor | float,
        weights: th.Tensor | None,
    ) -> tuple[float, th.Tensor, np.ndarray | None]:
        """The Huber loss and its gradients (in ``.grad``), bitwise what autograd would give; the
        current Q-values; with PER weights, the TD errors (:meth:`_td_errors`)."""
        online, target = nets
        with th.no_grad():
            next_obs = replay_data.next_observations
            next_q_online = online.forward(next_obs) if self.double_q else None
            target_q_values = td_target(
                replay_data.rewards, replay_data.dones, discounts, target.forward(next_obs), next_q_online
            )
            q_all = online.forward(replay_data.observations, keep=True)
            actions = replay_data.actions.long()
            current_q_values = th.gather(q_all, dim=1, index=actions)
            td_errors = self._td_errors(current_q_values, target_q_values, weights)
            if weights is None:
                loss = F.smooth_l1_loss(current_q_values, target_q_values)
                grad_q = aten.smooth_l1_loss_backward.default(_ONE, current_q_values, target_q_values, 1, 1.0)
            else:
                elementwise = F.smooth_l1_loss(current_q_values, target_q_values, reduction="none")
                loss = (weights * elementwise).mean()
                # mean's backward (1 / count, expanded), then mul's (times the weights): the same
                # products, weights * (1 / n), with no expanded tensor (a 0-dim one works on any device)
                grad_elementwise = weights * _inverse_count(elementwise.numel())
                grad_q = aten.smooth_l1_loss_backward.default(
                    grad_elementwise, current_q_values, target_q_values, 0, 1.0
                )
            online.backward(th.zeros_like(q_all).scatter_add_(1, actions, grad_q))  # gather's backward
        return loss.item(), current_q_values, td_errors

    def _gradients_autograd(
        self, replay_data: ReplayBufferSamples, discounts: th.Tensor | float, weights: th.Tensor | None
    ) -> tuple[float, th.Tensor, np.ndarray | None]:
        """The same, through autograd: for networks :mod:`cartpole_dqn.dqn.fast.explicit` does not know."""
        with th.no_grad():
            target_q_values = self._target(replay_data, discounts)
        current_q_values = th.gather(
            self.q_net(replay_data.observations), dim=1, index=replay_data.actions.long()
        )
        td_errors = self._td_errors(current_q_values.detach(), target_q_values, weights)
        if weights is None:
            loss = F.smooth_l1_loss(current_q_values, target_q_values)
        else:
            loss = (weights * F.smooth_l1_loss(current_q_values, target_q_values, reduction="none")).mean()
        self.policy.optimizer.zero_grad()
        loss.backward()
        return loss.item(), current_q_values.detach(), td_errors

    def _td_errors(
        self, current: th.Tensor, target: th.Tensor, weights: th.Tensor | None
    ) -> np.ndarray | None:
        """With PER (``weights`` given), the TD errors as the priorities' array, checked before the
        update: a non-finite one stops training here, before it reaches the sum tree (which refuses
        it). Checked in numpy, as the sum tree needs them there anyway: cheaper than torch's ops."""
        if weights is None:
            return None
        errors = (current - target).cpu().numpy()
        if not np.isfinite(errors).all():
            raise self._divergence(float("nan"), float(current.mean()))
        return errors

    def _divergence(self, loss: float, q_mean: float) -> DivergenceError:
        return DivergenceError(
            f"training diverged at step {self.num_timesteps}: loss={loss}, mean Q={q_mean} "
            f"(try a lower learning rate than {self.learning_rate})"
        )

    def _target(self, replay_data: ReplayBufferSamples, discounts: th.Tensor | float) -> th.Tensor:
        next_obs = replay_data.next_observations
        next_q_online = self.q_net(next_obs) if self.double_q else None
        return td_target(
            replay_data.rewards, replay_data.dones, discounts, self.q_net_target(next_obs), next_q_online
        )
