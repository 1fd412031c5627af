from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env

from cartpole_dqn import DQNAgent, DuelingDQNPolicy, PrioritizedReplayBuffer
from tests.conftest import assert_tracks_within_rounding, flushing_denormals

SMALL: dict[str, Any] = dict(
    learning_starts=100,
    train_freq=4,
    gradient_steps=2,
    target_update_interval=50,
    batch_size=32,
    policy_kwargs={"net_arch": [32, 32]},
    seed=3,
    device="cpu",
)


def parameters(model: DQN) -> list[th.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


@pytest.mark.parametrize("n_steps", [1, 3])
@pytest.mark.parametrize("fused", [False, True], ids=["single-tensor-adam", "fused-adam"])
def test_vanilla_update_is_exactly_sb3s(n_steps: int, fused: bool) -> None:
    """With plug-ins off, our fast update (explicit passes, flat Adam) is stock SB3's update, bit for
    bit, given the same Adam kernel: torch's default single-tensor one, or its fused one (our default)."""
    adam = {"optimizer_kwargs": {"fused": fused}}
    kwargs = {**SMALL, "policy_kwargs": {**SMALL["policy_kwargs"], **adam}}
    stock = DQN("MlpPolicy", make_vec_env("CartPole-v1", seed=3), n_steps=n_steps, **kwargs)
    stock.train = flushing_denormals(stock.train)  # type: ignore[method-assign]
    stock.learn(600)
    ours = DQNAgent("MlpPolicy", make_vec_env("CartPole-v1", seed=3), n_steps=n_steps, **kwargs).learn(600)
    assert ours._explicit_pair.nets is not None  # the fast path ran
    assert ours._n_updates == stock._n_updates > 0
    for a, b in zip(parameters(stock), parameters(ours), strict=True):
        assert th.equal(a, b)


def test_the_default_fast_update_tracks_stock_sb3_as_users_run_it() -> None:
    """Against stock SB3 exactly as users run it (torch's default Adam, no flushing), our default
    (fused Adam) differs only by the kernels' rounding: after 256 updates the parameters agree to
    1e-4 relative, and the greedy actions on 1,000 states, and the experience collected between the
    two training phases by the once-trained policies, are the same.
    Tolerance, not bits: the fused kernel rounds the Adam step differently (a few 1e-9)."""
    zoo = dict(learning_starts=1000, train_freq=256, gradient_steps=128, target_update_interval=10, seed=7)
    kwargs: dict[str, Any] = {**zoo, "policy_kwargs": {"net_arch": [64, 64]}, "device": "cpu"}
    stock = DQN("MlpPolicy", make_vec_env("CartPole-v1", seed=7), **kwargs).learn(1280)
    ours = DQNAgent("MlpPolicy", make_vec_env("CartPole-v1", seed=7), **kwargs).learn(1280)
    assert ours._n_updates == stock._n_updates == 256
    assert_tracks_within_rounding(stock, ours)
    assert stock.replay_buffer is not None and ours.replay_buffer is not None
    np.testing.assert_array_equal(ours.replay_buffer.observations, stock.replay_buffer.observations)


def test_double_q_changes_the_update() -> None:
    """The control for the test above: that comparison can fail."""
    stock = DQN("MlpPolicy", make_vec_env("CartPole-v1", seed=3), **SMALL).learn(600)
    double = DQNAgent("MlpPolicy", make_vec_env("CartPole-v1", seed=3), double_q=True, **SMALL).learn(600)
    assert not all(th.equal(a, b) for a, b in zip(parameters(stock), parameters(double), strict=True))


def full_agent(n_envs: int = 1) -> DQNAgent:
    return DQNAgent(
        "DuelingMlpPolicy",
        make_vec_env("CartPole-v1", n_envs=n_envs, seed=5),
        double_q=True,
        gamma=0.9,  # not SB3's default 0.99, so the buffer can only have it from the agent
        n_steps=3,
        replay_buffer_class=PrioritizedReplayBuffer,
        replay_buffer_kwargs={"alpha": 0.5, "beta_initial": 0.3},
        **{**SMALL, "policy_kwargs": {"net_arch": [32], "stream_arch": [16]}},
    )


def test_plugins_train_together_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent = full_agent().learn(800)
    buffer = agent.replay_buffer
    assert isinstance(buffer, PrioritizedReplayBuffer)
    assert isinstance(agent.policy, DuelingDQNPolicy)
    assert buffer.n_steps == 3 and buffer.gamma == 0.9
    assert 0.3 < buffer.beta <= 1.0  # annealed from beta_initial
    leaves = buffer.tree.values()[: buffer.size()]
    assert len(np.unique(leaves)) > 10  # priorities came from TD errors, not all the max priority


def test_multi_env_training_with_per_stores_and_learns_every_env_column() -> None:
    agent = full_agent(n_envs=4).learn(800)
    buffer = agent.replay_buffer
    assert isinstance(buffer, PrioritizedReplayBuffer) and buffer.n_envs == 4
    assert buffer.size() * 4 == agent.num_timesteps  # one row per vector step, one slot per env
    # Priorities were learned in every env's column (not only the max priority given on insertion).
    leaves = buffer.tree.values()[: buffer.size() * 4].reshape(-1, 4)
    for column in leaves.T:
        assert len(np.unique(column)) > 5
    drawn = buffer.sample(512).indices % 4
    assert set(drawn.tolist()) == {0, 1, 2, 3}


def test_save_load_round_trip_in_process_and_in_a_fresh_process(tmp_path: Path) -> None:
    agent = full_agent().learn(400)
    path = tmp_path / "model.zip"
    agent.save(path)
    obs = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    expected = agent.predict(obs, deterministic=True)[0]

    loaded = DQNAgent.load(path, device="cpu")
    assert loaded.double_q is True
    assert loaded.replay_buffer_class is PrioritizedReplayBuffer
    assert isinstance(loaded.policy, DuelingDQNPolicy) and loaded.policy.stream_arch == [16]
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)

    np.save(tmp_path / "obs.npy", obs)
    code = (
        "import json, numpy as np; from cartpole_dqn import DQNAgent; "
        f"m = DQNAgent.load(r'{path}', device='cpu'); obs = np.load(r'{tmp_path / 'obs.npy'}'); "
        "print(json.dumps({'actions': m.predict(obs, deterministic=True)[0].tolist(), "
        "'double_q': m.double_q, 'policy': type(m.policy).__name__}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fresh = json.loads(out.stdout.strip().splitlines()[-1])
    assert fresh["actions"] == expected.tolist()
    assert fresh["double_q"] is True and fresh["policy"] == "DuelingDQNPolicy"


def test_loading_an_nstep_model_does_not_warn(tmp_path: Path) -> None:
    DQNAgent("MlpPolicy", make_vec_env("CartPole-v1", seed=1), n_steps=3, **SMALL).save(tmp_path / "m.zip")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = DQNAgent.load(tmp_path / "m.zip", device="cpu")
    assert loaded.n_steps == 3


def test_the_baseline_implementation_is_stock_sb3() -> None:
    from cartpole_dqn.config import RunConfig
    from cartpole_dqn.run.factory import build_agent

    env = make_vec_env("CartPole-v1", seed=0)
    stock = build_agent(RunConfig(implementation="sb3", policy="MlpPolicy", net_arch=[8]), env)
    ours = build_agent(RunConfig(net_arch=[8]), env)
    assert type(stock) is DQN and type(ours) is DQNAgent
    assert "fused" not in stock.policy.optimizer.defaults or not stock.policy.optimizer.defaults["fused"]


# --- the discount is always the agent's gamma ** n (issue: PER with several envs used 0.99) ---


@pytest.mark.parametrize("n_envs", [1, 2])
@pytest.mark.parametrize("n_steps", [1, 3])
@pytest.mark.parametrize("per", [False, True])
def test_the_discount_is_the_agents_gamma_for_every_combination(n_envs: int, n_steps: int, per: bool) -> None:
    gamma = 0.9
    extra: dict[str, Any] = {"replay_buffer_class": PrioritizedReplayBuffer} if per else {}
    agent = DQNAgent(
        "MlpPolicy",
        make_vec_env("CartPole-v1", n_envs=n_envs, seed=0),
        gamma=gamma,
        n_steps=n_steps,
        learning_starts=10**6,  # collect only: the buffer fills, nothing trains
        policy_kwargs={"net_arch": [8]},
        seed=0,
        **extra,
    )
    agent.learn(400)
    assert agent.replay_buffer is not None
    batch = agent.replay_buffer.sample(512)
    # What DQNAgent.train multiplies the bootstrap value with: per-sample discounts, else its gamma.
    used = np.full(512, agent.gamma) if batch.discounts is None else batch.discounts.numpy().ravel()
    allowed = [gamma**k for k in range(1, n_steps + 1)]
    assert all(min(abs(u - a) for a in allowed) < 1e-6 for u in used), sorted(set(used.round(4)))
    # Windows cut by an episode end bootstrap earlier; the rest use the full gamma ** n_steps.
    assert np.isclose(used, gamma**n_steps, atol=1e-6).mean() > 0.5


# --- PER and divergence ---


def test_a_diverging_per_run_raises_divergence_error_not_a_sum_tree_error() -> None:
    from cartpole_dqn.errors import DivergenceError

    agent = DQNAgent(
        "MlpPolicy",
        make_vec_env("CartPole-v1", seed=0),
        learning_rate=1e30,
        replay_buffer_class=PrioritizedReplayBuffer,
        **{**SMALL, "learning_starts": 50},
    )
    with pytest.raises(DivergenceError, match="diverged"):
        agent.learn(2000)


# --- the update, pinned on hand-built networks and batches ---


def linear_agent(**kwargs: Any) -> DQNAgent:
    """A DQNAgent whose Q-networks are single linear layers (net_arch []), so tests can set them."""
    return DQNAgent(
        "MlpPolicy",
        make_vec_env("CartPole-v1", seed=0),
        policy_kwargs={"net_arch": []},
        learning_starts=0,
        seed=0,
        device="cpu",
        **kwargs,
    )


def set_linear(q_net: th.nn.Module, weight: list[list[float]]) -> None:
    (layer,) = [m for m in q_net.modules() if isinstance(m, th.nn.Linear)]
    with th.no_grad():
        layer.weight.copy_(th.tensor(weight))
        layer.bias.zero_()


ONLINE = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]  # Q(s) = (s0, s1)
TARGET = [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]  # Q'(s) = (s2, s3)


def hand_batch(weights: th.Tensor | None = None) -> Any:
    """Two transitions where vanilla, Double and a swapped Double target all differ."""
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    from cartpole_dqn.dqn.buffers import PrioritizedReplayBufferSamples

    fields = dict(
        observations=th.tensor([[1.0, 2.0, 0.0, 0.0], [3.0, 1.0, 0.0, 0.0]]),
        actions=th.tensor([[0], [1]]),
        # Online net prefers action 1 in row 0 (5 > 1) and action 0 in row 1 (4 > 2);
        # the target net prefers action 0 in row 0 (10 > 3) and action 1 in row 1 (8 > 6).
        next_observations=th.tensor([[1.0, 5.0, 10.0, 3.0], [4.0, 2.0, 6.0, 8.0]]),
        dones=th.tensor([[0.0], [0.0]]),
        rewards=th.tensor([[1.0], [0.5]]),
        discounts=th.tensor([[0.5], [0.25]]),
    )
    if weights is None:
        return ReplayBufferSamples(**fields)
    return PrioritizedReplayBufferSamples(**fields, weights=weights, indices=np.array([3, 7]))


def logged_loss_after_one_update(agent: DQNAgent, batch: Any) -> float:
    from stable_baselines3.common.logger import Logger

    set_linear(agent.q_net, ONLINE)
    set_linear(agent.q_net_target, TARGET)
    assert agent.replay_buffer is not None
    agent.replay_buffer.sample = lambda *a, **k: batch  # type: ignore[method-assign]
    agent.set_logger(Logger(folder=None, output_formats=[]))
    agent.train(gradient_steps=1, batch_size=2)
    return float(agent.logger.name_to_value["train/loss"])


def huber(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 1, 0.5 * x**2, np.abs(x) - 0.5)


# Current Q(s, a): row 0 takes action 0 -> s0 = 1; row 1 takes action 1 -> s1 = 1.
CURRENT = np.array([1.0, 1.0])
TARGETS = {
    # online picks (1, 0), target values them: (3, 6)
    "double": np.array([1.0 + 0.5 * 3.0, 0.5 + 0.25 * 6.0]),
    # target picks (0, 1), online values them: (1, 2) -- what a swapped implementation would give
    "swapped": np.array([1.0 + 0.5 * 1.0, 0.5 + 0.25 * 2.0]),
    # max over the target net: (10, 8)
    "vanilla": np.array([1.0 + 0.5 * 10.0, 0.5 + 0.25 * 8.0]),
}


@pytest.mark.parametrize("double_q", [False, True])
def test_the_td_target_is_wired_as_the_papers_say(double_q: bool) -> None:
    """Double DQN (van Hasselt et al. 2016): the online net picks a*, the target net values it."""
    loss = logged_loss_after_one_update(linear_agent(double_q=double_q), hand_batch())
    expected = {name: huber(target - CURRENT).mean() for name, target in TARGETS.items()}
    assert len({round(v, 6) for v in expected.values()}) == 3  # the three wirings are distinguishable
    assert loss == pytest.approx(expected["double" if double_q else "vanilla"], rel=1e-6)


def test_importance_weights_reach_the_loss() -> None:
    agent = linear_agent(double_q=True, replay_buffer_class=PrioritizedReplayBuffer)
    weights = th.tensor([[0.25], [1.0]])
    loss = logged_loss_after_one_update(agent, hand_batch(weights))
    elementwise = huber(TARGETS["double"] - CURRENT)
    assert loss == pytest.approx(float((weights.numpy().ravel() * elementwise).mean()), rel=1e-6)
    assert loss != pytest.approx(float(elementwise.mean()), rel=1e-3)


def test_priorities_change_exactly_at_the_sampled_slots() -> None:
    agent = linear_agent(double_q=True, replay_buffer_class=PrioritizedReplayBuffer)
    agent.learn(20)  # a few stored transitions (slots 0..19), all at the initial max priority
    buffer = agent.replay_buffer
    assert isinstance(buffer, PrioritizedReplayBuffer)
    before = buffer.tree.values()
    logged_loss_after_one_update(agent, hand_batch(th.ones(2, 1)))
    after = buffer.tree.values()
    td = CURRENT - TARGETS["double"]
    expected = (np.abs(td) + buffer.eps) ** buffer.alpha
    np.testing.assert_allclose(after[[3, 7]], expected, rtol=1e-6)
    untouched = np.setdiff1d(np.arange(len(after)), [3, 7])
    np.testing.assert_array_equal(after[untouched], before[untouched])


# --- the fast update's parts, each against what it replaces ---


@pytest.mark.parametrize("fused", [False, True])
def test_flat_adam_is_torchs_adam_bit_for_bit_and_shares_its_state_dicts(fused: bool) -> None:
    import copy

    from cartpole_dqn.dqn.fast.optim import FlatAdam

    th.manual_seed(0)
    net = th.nn.Sequential(th.nn.Linear(4, 32), th.nn.ReLU(), th.nn.Linear(32, 2))
    ref = copy.deepcopy(net)
    flat = FlatAdam(net.parameters(), lr=1e-2, weight_decay=1e-3, fused=fused)
    torch_adam = th.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=1e-3, fused=fused or None)
    for _ in range(25):
        x = th.randn(16, 4)
        for model, optimizer in ((net, flat), (ref, torch_adam)):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert th.equal(a, b)
    # Its state dict loads into torch's Adam, and torch's into it: the steps then continue alike.
    again = FlatAdam(copy.deepcopy(ref).parameters(), lr=1e-2, weight_decay=1e-3, fused=fused)
    again.load_state_dict(torch_adam.state_dict())
    assert again.step_count.item() == 25
    th.testing.assert_close(again.flat_exp_avg_sq, flat.flat_exp_avg_sq, rtol=0, atol=0)
    other = th.optim.Adam(copy.deepcopy(net).parameters(), lr=1e-2)
    other.load_state_dict(flat.state_dict())
    assert all(
        th.equal(other.state[p]["exp_avg"], flat.state[q]["exp_avg"])
        for p, q in zip(other.param_groups[0]["params"], flat.params, strict=True)
    )


def test_a_full_run_never_imports_torch_dynamo(tmp_path: Path) -> None:
    """torch.optim's dynamo-disabling wrappers import torch._dynamo (~1.3 s) on first use; ours avoid them."""
    code = (
        "import sys\n"
        "from stable_baselines3.common.env_util import make_vec_env\n"
        "from cartpole_dqn import DQNAgent\n"
        "agent = DQNAgent('DuelingMlpPolicy', make_vec_env('CartPole-v1'), learning_starts=100, "
        "policy_kwargs={'net_arch': [16]})\n"
        f"agent.learn(400).save(r'{tmp_path / 'm.zip'}')\n"
        f"DQNAgent.load(r'{tmp_path / 'm.zip'}')\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "leaky_relu", "gelu", "silu"])
@pytest.mark.parametrize(
    ("policy", "extra"),
    [
        ("MlpPolicy", {}),
        ("DuelingMlpPolicy", {"stream_arch": []}),
        ("DuelingMlpPolicy", {"stream_arch": [8]}),
    ],
)
@pytest.mark.parametrize("weighted", [False, True], ids=["mean-loss", "per-weighted-loss"])
def test_explicit_passes_give_autograds_gradients_bit_for_bit(
    activation: str, policy: str, extra: dict[str, Any], weighted: bool
) -> None:
    from torch.nn import functional as F

    from cartpole_dqn.dqn.fast.explicit import explicit_network
    from cartpole_dqn.dqn.networks import ACTIVATION_CLASSES

    th.manual_seed(1)
    agent = DQNAgent(
        policy,
        make_vec_env("CartPole-v1"),
        policy_kwargs={"net_arch": [16, 12], "activation_fn": ACTIVATION_CLASSES[activation], **extra},
    )
    q_net = agent.q_net
    x, y, w = th.randn(32, 4), th.randn(32, 1), th.rand(32, 1)
    actions = th.randint(0, 2, (32, 1))
    q = q_net(x).gather(1, actions)
    loss = (w * F.smooth_l1_loss(q, y, reduction="none")).mean() if weighted else F.smooth_l1_loss(q, y)
    q_net.zero_grad(set_to_none=True)
    loss.backward()
    expected = [p.grad.clone() for p in q_net.parameters()]
    grads = [th.full_like(p, float("nan")) for p in q_net.parameters()]  # every one must be written
    net = explicit_network(q_net, grads)
    assert net is not None
    with th.no_grad():
        q_all = net.forward(x, keep=True)
        q = q_all.gather(1, actions)
        one = th.ones(())
        if weighted:
            grad_q = th.ops.aten.smooth_l1_loss_backward(one.expand_as(q) / q.numel() * w, q, y, 0, 1.0)
        else:
            grad_q = th.ops.aten.smooth_l1_loss_backward(one, q, y, 1, 1.0)
        net.backward(th.zeros_like(q_all).scatter_add_(1, actions, grad_q))
    for a, b in zip(expected, grads, strict=True):
        assert th.equal(a, b)


def test_unknown_networks_fall_back_to_autograd() -> None:
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class Tanhed(BaseFeaturesExtractor):
        def __init__(self, space: Any) -> None:
            super().__init__(space, features_dim=4)

        def forward(self, obs: th.Tensor) -> th.Tensor:
            return th.tanh(obs)

    agent = DQNAgent(
        "MlpPolicy",
        make_vec_env("CartPole-v1"),
        learning_starts=50,
        policy_kwargs={"net_arch": [8], "features_extractor_class": Tanhed},
    )
    before = parameters(agent)
    agent.learn(200)
    assert agent._explicit_pair.nets is None and agent._n_updates > 0
    assert not all(th.equal(a, b) for a, b in zip(before, parameters(agent), strict=True))
