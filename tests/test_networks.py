from __future__ import annotations

import torch as th

from cartpole_dqn.dqn.agent import td_target
from cartpole_dqn.dqn.networks import DuelingHead


def test_dueling_output_shape_and_mean_advantage_identity() -> None:
    th.manual_seed(0)
    head = DuelingHead(in_dim=4, n_actions=3, trunk_arch=[16], stream_arch=[8])
    x = th.randn(5, 4)
    q = head(x)
    assert q.shape == (5, 3)
    value, advantage = head.streams(x)
    assert value.shape == (5, 1) and advantage.shape == (5, 3)
    # Q = V + A - mean(A): the mean over actions of Q is exactly V.
    th.testing.assert_close(q.mean(dim=1, keepdim=True), value)
    th.testing.assert_close(q - value, advantage - advantage.mean(dim=1, keepdim=True))


def test_double_dqn_target_differs_from_vanilla_on_a_hand_built_case() -> None:
    rewards = th.tensor([[1.0], [0.0]])
    dones = th.tensor([[0.0], [1.0]])
    next_q_target = th.tensor([[2.0, 10.0], [7.0, 3.0]])
    next_q_online = th.tensor([[5.0, 1.0], [0.0, 9.0]])  # online prefers action 0 in row 0
    gamma = 0.5
    vanilla = td_target(rewards, dones, gamma, next_q_target, None)
    double = td_target(rewards, dones, gamma, next_q_target, next_q_online)
    # Vanilla: 1 + 0.5 * max(2, 10) = 6. Double: online argmax is 0, target values it at 2: 1 + 0.5 * 2 = 2.
    th.testing.assert_close(vanilla, th.tensor([[6.0], [0.0]]))
    th.testing.assert_close(double, th.tensor([[2.0], [0.0]]))


def test_per_sample_discounts_are_used() -> None:
    rewards = th.zeros(2, 1)
    dones = th.zeros(2, 1)
    next_q = th.tensor([[1.0, 4.0], [2.0, 0.0]])
    discounts = th.tensor([[0.5], [0.25]])
    th.testing.assert_close(td_target(rewards, dones, discounts, next_q, None), th.tensor([[2.0], [0.5]]))
