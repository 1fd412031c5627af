"""``DQNAgent``: SB3's ``DQN`` with a Double-DQN target and prioritized-replay support.

Only the gradient update (``train``) and the per-step hook (``_on_step``) are overridden;
rollout collection, the target-network schedule, exploration, logging and save/load are SB3's.
With ``double_q=False`` and a plain replay buffer the update is exactly SB3's vanilla one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.nn import functional as F

from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from cartpole_dqn.dqn.policies import DuelingDQNPolicy
from cartpole_dqn.errors import DivergenceError


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
        next_values = next_q_target.max(dim=1).values.reshape(-1, 1)
    else:
        next_actions = next_q_online.argmax(dim=1, keepdim=True)
        next_values = th.gather(next_q_target, dim=1, index=next_actions)
    return rewards + (1 - dones) * discounts * next_values


class DQNAgent(DQN):
    """SB3 ``DQN`` plus Double-DQN and prioritized replay; every other SB3 tool keeps working.

    :param double_q: use the Double-DQN target (van Hasselt et al. 2016)
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

    def __init__(self, *args: Any, double_q: bool = False, **kwargs: Any) -> None:
        self.double_q = double_q
        super().__init__(*args, **kwargs)

    @property
    def prioritized(self) -> bool:
        return isinstance(self.replay_buffer, PrioritizedReplayBuffer)

    def _setup_model(self) -> None:
        cls = self.replay_buffer_class
        if cls is None or not issubclass(cls, NStepReplayBuffer):
            super()._setup_model()
            return
        # An n-step buffer computes the discounts the update multiplies with (gamma ** n, cut short at
        # episode ends), for every n_envs and n_steps, so it must have this agent's n_steps and gamma.
        # SB3 wires them only into a buffer it picks itself (and, after load(), warns that n_steps is
        # ignored by the class it picked before save): hand them over ourselves, keep that warning quiet.
        given = self.replay_buffer_kwargs
        for key, ours in (("n_steps", self.n_steps), ("gamma", self.gamma)):
            if key in given and given[key] != ours:
                raise ValueError(
                    f"replay_buffer_kwargs {key}={given[key]} differs from the agent's {key}={ours}: "
                    "the buffer's discounts must be the agent's"
                )
        self.replay_buffer_kwargs = {**given, "n_steps": self.n_steps, "gamma": self.gamma}
        n_steps, self.n_steps = self.n_steps, 1
        try:
            super()._setup_model()
        finally:
            self.n_steps = n_steps

    def _on_step(self) -> None:
        super()._on_step()
        if isinstance(self.replay_buffer, PrioritizedReplayBuffer):
            self.replay_buffer.anneal_beta(1.0 - self._current_progress_remaining)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.replay_buffer
        assert buffer is not None
        prioritized = isinstance(buffer, PrioritizedReplayBuffer)

        losses: list[float] = []
        q_sum = th.zeros((), device=self.device)
        for _ in range(gradient_steps):
            replay_data = buffer.sample(batch_size, env=self._vec_normalize_env)
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            with th.no_grad():
                target_q_values = self._target(replay_data, discounts)

            current_q_values = th.gather(
                self.q_net(replay_data.observations), dim=1, index=replay_data.actions.long()
            )
            if prioritized:
                assert isinstance(buffer, PrioritizedReplayBuffer)
                assert isinstance(replay_data, PrioritizedReplayBufferSamples)
                td_errors = (current_q_values.detach() - target_q_values).cpu().numpy()
                if not np.isfinite(td_errors).all():  # before the sum tree, which refuses them
                    raise self._divergence(float("nan"), float(current_q_values.detach().mean()))
                elementwise = F.smooth_l1_loss(current_q_values, target_q_values, reduction="none")
                loss = (replay_data.weights * elementwise).mean()
            else:
                loss = F.smooth_l1_loss(current_q_values, target_q_values)
            losses.append(loss.item())
            q_sum += current_q_values.detach().mean()

            self.policy.optimizer.zero_grad()
            loss.backward()
            # foreach: one fused norm over all tensors; bitwise the same result as SB3's default path
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm, foreach=True)
            self.policy.optimizer.step()

            if prioritized:
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
