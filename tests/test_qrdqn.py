"""QRDQNAgent: stock sb3-contrib QRDQN with plug-ins off, PER and Double target wired as the papers say,
the dueling quantile head, save/load and the weights-only export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from sb3_contrib import QRDQN
from sb3_contrib.common.utils import quantile_huber_loss
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from cartpole_dqn.config import RunConfig
from cartpole_dqn.dqn.buffers import PrioritizedReplayBuffer, WindowedReplayBuffer
from cartpole_dqn.dqn.fast.optim import FlatAdam
from cartpole_dqn.dqn.networks import DuelingQuantileHead
from cartpole_dqn.dqn.qrdqn import QRDQNAgent, quantile_huber_loss_per_sample, quantile_td_target
from cartpole_dqn.dqn.quantile_policies import DuelingQRDQNPolicy
from cartpole_dqn.errors import ConfigError
from cartpole_dqn.run.factory import agent_class, build_agent
from cartpole_dqn.run.models import export_policy, load_model, load_policy, saved_algorithm
from tests.conftest import assert_tracks_within_rounding, flushing_denormals

SMALL = dict(
    learning_rate=1e-3,
    buffer_size=5000,
    learning_starts=100,
    batch_size=32,
    train_freq=16,
    gradient_steps=4,
    target_update_interval=50,
    exploration_fraction=0.5,
    seed=3,
    device="cpu",
)


def make_agent(cls: type[QRDQN], policy: str = "MlpPolicy", n_envs: int = 1, **kwargs: Any) -> QRDQN:
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=5)
    agent_kwargs = {**SMALL, "policy_kwargs": {"net_arch": [32], "n_quantiles": 8}, **kwargs}
    return cls(policy, env, **agent_kwargs)


def parameters(agent: QRDQN) -> list[th.Tensor]:
    return [p.detach().clone() for p in agent.policy.parameters()]


# --- stock equivalence ---


@pytest.mark.parametrize("fused", [False, True], ids=["single-tensor-adam", "fused-adam"])
@pytest.mark.parametrize(
    ("n_steps", "n_envs", "max_grad_norm"), [(1, 1, None), (3, 1, 10.0), (3, 2, None), (1, 2, 0.5)]
)
def test_with_plugins_off_it_is_stock_qrdqn_bit_for_bit(
    n_steps: int, n_envs: int, max_grad_norm: float | None, fused: bool
) -> None:
    """Same seed, same settings: identical weights, identical replay data (so identical actions) and
    identical logged loss after 1,000 steps of real training (our explicit passes compute autograd's
    gradients and FlatAdam torch's Adam step; our windowed buffer samples what SB3's buffers sample;
    our epsilon-greedy step draws what QRDQN's draws), given the same Adam kernel (torch's
    single-tensor one, stock's default, or its fused one, ours) and float setting (denormals flushed
    during updates, as ours)."""
    adam_kwargs = {"eps": 0.01 / SMALL["batch_size"], "fused": fused}
    runs = []
    for cls in (QRDQN, QRDQNAgent):
        optimizer: dict[str, Any] = {}
        if cls is QRDQN:
            optimizer = {"optimizer_class": th.optim.Adam, "optimizer_kwargs": adam_kwargs}
        elif not fused:
            optimizer = {"optimizer_class": FlatAdam, "optimizer_kwargs": adam_kwargs}
        policy_kwargs = {"net_arch": [32], "n_quantiles": 8, **optimizer}
        agent = make_agent(
            cls, n_envs=n_envs, n_steps=n_steps, max_grad_norm=max_grad_norm, policy_kwargs=policy_kwargs
        )
        if cls is QRDQN:
            agent.train = flushing_denormals(agent.train)  # type: ignore[method-assign]
        agent.learn(1000)
        runs.append(agent)
    stock, ours = runs
    assert isinstance(ours, QRDQNAgent) and ours._explicit_pair.nets is not None  # the fast path ran
    assert isinstance(ours.policy.optimizer, FlatAdam) and ours.policy.optimizer.fused == fused
    assert isinstance(ours.replay_buffer, WindowedReplayBuffer)
    assert not isinstance(stock.replay_buffer, WindowedReplayBuffer)
    assert ours._n_updates == stock._n_updates > 0
    for a, b in zip(parameters(stock), parameters(ours), strict=True):
        assert th.equal(a, b)
    assert ours.logger.name_to_value["train/loss"] == stock.logger.name_to_value["train/loss"]
    assert stock.replay_buffer is not None and ours.replay_buffer is not None
    np.testing.assert_array_equal(stock.replay_buffer.observations, ours.replay_buffer.observations)
    np.testing.assert_array_equal(stock.replay_buffer.actions, ours.replay_buffer.actions)


def test_the_default_fast_update_tracks_stock_qrdqn_as_users_run_it() -> None:
    """Against stock QRDQN exactly as users run it (torch's default single-tensor Adam, no
    flushing), our default (fused Adam) differs only by the kernels' rounding: after 240 updates
    the parameters agree to 1e-4 relative and the greedy actions on 1,000 states are the same.
    Tolerance, not bits: the fused kernel rounds the Adam step differently (about 1e-8)."""
    schedule = dict(learning_starts=1000, train_freq=256, gradient_steps=120, target_update_interval=10)
    agents = []
    for cls in (QRDQN, QRDQNAgent):  # each its own policy_kwargs: QRDQN writes its optimizer into them
        policy_kwargs = {"net_arch": [64, 64], "n_quantiles": 10}
        env = make_vec_env("CartPole-v1", seed=7)
        agent = cls("MlpPolicy", env, seed=7, device="cpu", policy_kwargs=policy_kwargs, **schedule)
        agents.append(agent.learn(1280))  # built and trained in turn: both draw from the global RNG
    stock, ours = agents
    assert not stock.policy.optimizer.defaults["fused"]
    assert isinstance(ours.policy.optimizer, FlatAdam) and ours.policy.optimizer.fused
    assert ours._n_updates == stock._n_updates == 240
    assert_tracks_within_rounding(stock, ours)


def test_per_sample_loss_averages_to_sb3_contribs_quantile_huber_loss() -> None:
    generator = th.Generator().manual_seed(0)
    for batch, n_quantiles, scale in ((1, 1, 1.0), (7, 5, 0.3), (32, 50, 4.0)):
        current = th.randn(batch, n_quantiles, generator=generator) * scale
        target = th.randn(batch, n_quantiles, generator=generator) * scale
        ours = quantile_huber_loss_per_sample(current, target)
        assert ours.shape == (batch,)
        expected = quantile_huber_loss(current, target, sum_over_quantiles=True)
        assert th.allclose(ours.mean(), expected, rtol=1e-6, atol=1e-7)
        # each sample's own loss is the stock loss of that sample alone
        for i in range(batch):
            single = quantile_huber_loss(current[i : i + 1], target[i : i + 1], sum_over_quantiles=True)
            assert th.allclose(ours[i], single, rtol=1e-6, atol=1e-7)


# --- the Double target ---


def test_double_target_lets_the_online_mean_pick_and_the_target_quantiles_value() -> None:
    """Two actions; the target net's mean prefers action 0, the online net's mean action 1. Vanilla
    QR-DQN takes the target net's quantiles of action 0, Double those of action 1."""
    next_target = th.tensor([[[5.0, 1.0], [7.0, 3.0], [9.0, 5.0]]])  # (1, 3 quantiles, 2 actions)
    next_online = th.tensor([[[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]]])
    rewards, dones = th.tensor([[1.0]]), th.tensor([[0.0]])
    vanilla = quantile_td_target(rewards, dones, 0.5, next_target, None)
    double = quantile_td_target(rewards, dones, 0.5, next_target, next_online)
    assert th.equal(vanilla, th.tensor([[1 + 2.5, 1 + 3.5, 1 + 4.5]]))
    assert th.equal(double, th.tensor([[1 + 0.5, 1 + 1.5, 1 + 2.5]]))
    # an episode end keeps only the reward; per-sample discounts (n-step) multiply each row
    ended = quantile_td_target(rewards, th.tensor([[1.0]]), 0.5, next_target, next_online)
    assert th.equal(ended, th.ones(1, 3))
    two = quantile_td_target(
        th.zeros(2, 1), th.zeros(2, 1), th.tensor([[1.0], [0.25]]), next_target.repeat(2, 1, 1), None
    )
    assert th.equal(two, th.tensor([[5.0, 7.0, 9.0], [1.25, 1.75, 2.25]]))


class Recording:
    """A buffer mixin remembering the batches the buffer hands out."""

    def sample(self, batch_size: int, env: Any = None) -> Any:
        batch = super().sample(batch_size, env)  # type: ignore[misc]
        self.recorded = [*getattr(self, "recorded", []), batch]
        return batch


class RecordingBuffer(Recording, WindowedReplayBuffer):
    pass


class RecordingPrioritizedBuffer(Recording, PrioritizedReplayBuffer):
    pass


def filled_agent(buffer_class: type, **kwargs: Any) -> QRDQNAgent:
    """An agent whose buffer holds 400 real transitions, with online and target nets apart."""
    agent = make_agent(QRDQNAgent, replay_buffer_class=buffer_class, learning_starts=10_000, **kwargs)
    agent.learn(400)  # collects only: learning starts later
    assert agent._n_updates == 0
    with th.no_grad():
        for p in agent.quantile_net_target.parameters():
            p.add_(th.randn_like(p) * 0.5)
    agent.set_logger(configure(None, [""]))
    assert isinstance(agent, QRDQNAgent)
    return agent


def expected_loss(agent: QRDQNAgent, batch: Any, double: bool, weighted: bool) -> tuple[float, th.Tensor]:
    """The mean (IS-weighted) quantile Huber loss of ``batch`` computed from scratch, and per sample."""
    with th.no_grad():
        next_target = agent.quantile_net_target(batch.next_observations)
        picker = agent.quantile_net(batch.next_observations) if double else next_target
        actions = picker.mean(dim=1).argmax(dim=1)
        discounts = batch.discounts if batch.discounts is not None else agent.gamma
        rows = th.arange(len(actions))
        target = batch.rewards + (1 - batch.dones) * discounts * next_target[rows, :, actions]
        current = agent.quantile_net(batch.observations)[rows, :, batch.actions.view(-1).long()]
        per_sample = th.stack(
            [quantile_huber_loss(c[None], t[None]) for c, t in zip(current, target, strict=True)]
        )
    weights = batch.weights.view(-1) if weighted else th.ones_like(per_sample)
    return float((weights * per_sample).mean()), per_sample


@pytest.mark.parametrize("double_q", [False, True])
def test_the_train_step_uses_the_target_the_flag_asks_for(double_q: bool) -> None:
    agent = filled_agent(RecordingBuffer, double_q=double_q, n_steps=3)
    before = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    agent.train(gradient_steps=1, batch_size=32)
    (batch,) = agent.replay_buffer.recorded  # type: ignore[union-attr]
    agent.policy.load_state_dict(before)
    logged = agent.logger.name_to_value["train/loss"]
    wanted, _ = expected_loss(agent, batch, double=double_q, weighted=False)
    other, _ = expected_loss(agent, batch, double=not double_q, weighted=False)
    assert logged == pytest.approx(wanted, rel=1e-5)
    assert abs(wanted - other) > 1e-3 * abs(wanted)  # the two targets do differ on this batch


# --- prioritized replay ---


def test_per_weights_reach_the_loss_and_priorities_change_at_exactly_the_sampled_slots() -> None:
    agent = filled_agent(RecordingPrioritizedBuffer, n_steps=3)
    buffer = agent.replay_buffer
    assert isinstance(buffer, RecordingPrioritizedBuffer)
    assert buffer.n_steps == 3 and buffer.gamma == agent.gamma  # the agent's discounts reach the buffer
    rng = np.random.default_rng(0)
    n_slots = buffer.size() * buffer.n_envs
    buffer.update_priorities(np.arange(n_slots), rng.uniform(0.1, 10.0, n_slots))  # non-uniform weights
    before_state = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    before_tree = buffer.tree[np.arange(n_slots)].copy()

    agent.train(gradient_steps=1, batch_size=32)

    (batch,) = buffer.recorded
    assert batch.weights.std() > 0
    agent.policy.load_state_dict(before_state)
    weighted, per_sample = expected_loss(agent, batch, double=False, weighted=True)
    unweighted, _ = expected_loss(agent, batch, double=False, weighted=False)
    assert agent.logger.name_to_value["train/loss"] == pytest.approx(weighted, rel=1e-5)
    assert abs(weighted - unweighted) > 1e-3 * abs(unweighted)
    after_tree = buffer.tree[np.arange(n_slots)]
    sampled = np.unique(batch.indices)
    untouched = np.setdiff1d(np.arange(n_slots), sampled)
    np.testing.assert_array_equal(after_tree[untouched], before_tree[untouched])
    # each sampled slot's priority is now its own quantile Huber loss (+ eps), to the power alpha
    last = {int(slot): float(loss) for slot, loss in zip(batch.indices, per_sample, strict=True)}
    for slot, loss in last.items():
        assert after_tree[slot] == pytest.approx((loss + buffer.eps) ** buffer.alpha, rel=1e-5)
    assert agent.logger.name_to_value["train/per_beta"] == buffer.beta


def test_per_beta_anneals_to_one_over_the_budget() -> None:
    agent = make_agent(QRDQNAgent, replay_buffer_class=PrioritizedReplayBuffer)
    agent.learn(600)
    buffer = agent.replay_buffer
    assert isinstance(buffer, PrioritizedReplayBuffer)
    assert buffer.beta == pytest.approx(1.0, abs=1e-2)


def test_a_diverging_per_run_stops_with_a_divergence_error() -> None:
    from cartpole_dqn.errors import DivergenceError

    agent = filled_agent(PrioritizedReplayBuffer)
    with th.no_grad():
        next(agent.quantile_net.parameters()).fill_(float("nan"))
    with pytest.raises(DivergenceError, match="diverged"):
        agent.train(gradient_steps=1, batch_size=32)


# --- the dueling quantile head ---


def test_dueling_quantiles_are_value_plus_centred_advantage_per_quantile() -> None:
    th.manual_seed(0)
    head = DuelingQuantileHead(4, n_actions=3, n_quantiles=5, trunk_arch=[16], stream_arch=[8])
    features = th.randn(10, 4)
    out = head(features)
    assert out.shape == (10, 5 * 3)
    quantiles = out.view(10, 5, 3)  # how QuantileNetwork.forward views it
    value, advantage = head.streams(features)
    assert value.shape == (10, 5, 1) and advantage.shape == (10, 5, 3)
    expected = value + advantage - advantage.mean(dim=2, keepdim=True)
    assert th.allclose(quantiles, expected)
    # the mean over actions of each quantile is that quantile's value stream
    assert th.allclose(quantiles.mean(dim=2, keepdim=True), value, atol=1e-6)


def test_the_dueling_alias_builds_dueling_quantile_networks() -> None:
    agent = make_agent(QRDQNAgent, "DuelingMlpPolicy")
    assert isinstance(agent.policy, DuelingQRDQNPolicy)
    obs = th.randn(6, 4)
    assert agent.quantile_net(obs).shape == (6, 8, 2)
    assert isinstance(agent.quantile_net.quantile_net, DuelingQuantileHead)
    assert isinstance(agent.quantile_net_target.quantile_net, DuelingQuantileHead)


# --- save/load and export ---


@pytest.mark.parametrize(("cls", "policy"), [(QRDQNAgent, "DuelingMlpPolicy"), (QRDQN, "MlpPolicy")])
def test_save_load_round_trip_restores_the_agent(tmp_path: Path, cls: type[QRDQN], policy: str) -> None:
    kwargs = {"double_q": True, "replay_buffer_class": PrioritizedReplayBuffer} if cls is QRDQNAgent else {}
    agent = make_agent(cls, policy, **kwargs)
    agent.learn(300)
    agent.save(tmp_path / "m.zip")
    assert saved_algorithm(tmp_path / "m.zip") == "qrdqn"
    loaded = load_model(tmp_path / "m.zip")
    assert isinstance(loaded, QRDQNAgent) and type(loaded.policy) is type(agent.policy)
    assert loaded.n_quantiles == 8 and loaded.double_q == (cls is QRDQNAgent)
    obs = th.randn(20, 4)
    with th.no_grad():
        assert th.equal(loaded.quantile_net(obs), agent.quantile_net(obs))
        assert th.equal(loaded.quantile_net_target(obs), agent.quantile_net_target(obs))


def test_dqn_zips_are_still_loaded_as_dqn(tmp_path: Path) -> None:
    from cartpole_dqn.dqn.agent import DQNAgent

    DQNAgent("MlpPolicy", make_vec_env("CartPole-v1"), policy_kwargs={"net_arch": [8]}).save(tmp_path / "d")
    assert saved_algorithm(tmp_path / "d.zip") == "dqn"
    assert isinstance(load_model(tmp_path / "d.zip"), DQNAgent)


@pytest.mark.parametrize("policy", ["MlpPolicy", "DuelingMlpPolicy"])
def test_export_round_trip_rebuilds_the_quantile_policy_without_pickle(tmp_path: Path, policy: str) -> None:
    agent = make_agent(QRDQNAgent, policy, policy_kwargs={"net_arch": [16, 16], "n_quantiles": 7})
    with th.no_grad():
        for p in agent.quantile_net.parameters():
            p.add_(th.randn_like(p))
    export_policy(agent, tmp_path / "out")
    rebuilt = load_policy(tmp_path / "out")
    assert rebuilt.description["algorithm"] == "qrdqn" and rebuilt.description["n_quantiles"] == 7
    assert isinstance(rebuilt.policy, QRDQNPolicy)
    assert isinstance(rebuilt.policy, DuelingQRDQNPolicy) == (policy == "DuelingMlpPolicy")
    obs = np.random.default_rng(1).normal(size=(500, 4)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.predict(obs)[0], agent.predict(obs, deterministic=True)[0])


# --- config and factory ---


def test_the_config_picks_the_agent_class() -> None:
    base = {"algorithm": "qrdqn", "policy": "MlpPolicy", "n_quantiles": 10}
    assert agent_class(RunConfig.from_mapping(base)) is QRDQNAgent
    assert agent_class(RunConfig.from_mapping({**base, "implementation": "sb3"})) is QRDQN
    config = RunConfig.from_mapping({**base, "implementation": "sb3", "max_grad_norm": None, "seed": 1})
    agent = build_agent(config, make_vec_env("CartPole-v1"))
    assert type(agent) is QRDQN and agent.n_quantiles == 10 and agent.max_grad_norm is None
    assert RunConfig.from_mapping({"algorithm": "qrdqn"}).quantiles == 200  # sb3-contrib's default


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"n_quantiles": 10}, "n_quantiles is only allowed with algorithm qrdqn"),
        ({"max_grad_norm": None}, "max_grad_norm null (no clipping) is only allowed with algorithm qrdqn"),
        ({"algorithm": "qrdqn", "n_quantiles": 0}, "n_quantiles must be in [1, inf)"),
        ({"algorithm": "qr"}, "algorithm must be one of dqn, qrdqn"),
        (
            {"algorithm": "qrdqn", "implementation": "sb3", "double_q": True, "policy": "MlpPolicy"},
            "implementation sb3 (stock sb3-contrib QRDQN) has no double_q",
        ),
    ],
)
def test_bad_algorithm_combinations_are_refused(values: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as error:
        RunConfig.from_mapping(values)
    assert needle in str(error.value)


@pytest.mark.parametrize("form", ["stock", "per-sample", "weighted"])
def test_the_written_out_loss_gradient_is_autograds_bit_for_bit(form: str) -> None:
    """The fast path's quantile Huber loss and its gradient with respect to the current quantiles
    equal autograd's over sb3-contrib's loss (or our per-sample form, PER-weighted or not), bit for
    bit, including TD errors at exactly +-1 (where Huber's branches meet) and far beyond it."""
    from cartpole_dqn.dqn.fast.quantile_loss import quantile_huber_loss_and_grad

    generator = th.Generator().manual_seed(1)
    for batch, n_quantiles, scale in ((1, 1, 1.0), (7, 5, 0.3), (64, 10, 2.0), (32, 50, 40.0)):
        current = th.randn(batch, n_quantiles, generator=generator) * scale
        target = th.randn(batch, n_quantiles, generator=generator) * scale
        target[0, 0] = current[0, 0] + 1.0  # |delta| == 1: the quadratic branch
        weights = th.rand(batch, generator=generator)
        leaf = current.clone().requires_grad_()
        samples = None
        if form == "stock":
            loss = quantile_huber_loss(leaf, target, sum_over_quantiles=True)
        else:
            samples = quantile_huber_loss_per_sample(leaf, target)
            loss = (weights * samples).mean() if form == "weighted" else samples.mean()
        (expected,) = th.autograd.grad(loss, leaf)
        ours, our_samples, grad = quantile_huber_loss_and_grad(
            current, target, per_sample=form != "stock", weights=weights if form == "weighted" else None
        )
        assert th.equal(ours, loss.detach())
        assert th.equal(grad, expected)
        assert (our_samples is None) == (samples is None)
        if samples is not None and our_samples is not None:
            assert th.equal(our_samples, samples.detach())
