from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpole_dqn.config import RunConfig, config_flag, load_config, read_config_file
from cartpole_dqn.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


def test_default_yaml_spells_out_the_builtin_defaults() -> None:
    assert load_config(CONFIGS / "default.yaml") == RunConfig()


def test_zoo_baseline_is_the_zoo_block() -> None:
    zoo = load_config(CONFIGS / "sb3_zoo_baseline.yaml")
    assert (zoo.learning_rate, zoo.batch_size, zoo.buffer_size, zoo.learning_starts) == (
        2.3e-3,
        64,
        100_000,
        1000,
    )
    assert (zoo.gamma, zoo.target_update_interval, zoo.train_freq, zoo.gradient_steps) == (0.99, 10, 256, 128)
    assert (zoo.exploration_fraction, zoo.exploration_final_eps, zoo.net_arch) == (0.16, 0.04, [256, 256])
    assert (zoo.n_steps, zoo.double_q, zoo.prioritized_replay, zoo.policy) == (1, False, False, "MlpPolicy")
    assert zoo.implementation == "sb3"  # stock stable_baselines3.DQN, not our subclass


def test_every_shipped_config_loads_every_value_it_states() -> None:
    """Each committed config validates, and each key it writes reaches the run config unchanged."""
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert {p.stem for p in paths} >= {"default", "sb3_zoo_baseline", "acrobot"}
    for path in paths:
        config = load_config(path)
        for key, value in yaml.safe_load(path.read_text()).items():
            assert getattr(config, key) == value, (path.name, key)


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = RunConfig(gamma=0.95, net_arch=[32, 16], policy="DuelingMlpPolicy", dueling_stream_arch=[8])
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("gamma: 0.9\nbatch_size: 32\n")
    config = load_config(path, {"batch_size": 128})
    assert (config.gamma, config.batch_size) == (0.9, 128)


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"gamma": 0.0}, "gamma must be in (0, 1]"),
        ({"gamma": 1.5}, "gamma must be in (0, 1]"),
        ({"batch_size": 0}, "batch_size must be in [1, inf)"),
        ({"total_timesteps": -10}, "total_timesteps must be in [1, inf)"),
        ({"learning_rate": 0}, "learning_rate must be in (0, inf)"),
        ({"exploration_final_eps": 1.2}, "exploration_final_eps must be in [0, 1]"),
        ({"eval_freq": -1}, "eval_freq must be in [0, inf)"),
        ({"seed": "abc"}, "seed must be an integer"),
        ({"seed": True}, "seed must be an integer"),
        ({"gamma": "high"}, "gamma must be a number"),
        ({"gamma": float("nan")}, "gamma must be a finite number"),
        ({"double_q": "yes"}, "double_q must be true or false"),
        ({"net_arch": []}, "net_arch must list at least one"),
        ({"net_arch": [64, 0]}, "net_arch entries must be >= 1"),
        ({"net_arch": "64"}, "net_arch must be a list of integers"),
        ({"policy": "CnnPolicy"}, "policy must be one of MlpPolicy, DuelingMlpPolicy"),
        ({"activation": "swish"}, "activation must be one of"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda"),
        ({"curve_episodes": 200}, "curve_episodes (200) must not exceed eval_episodes (100)"),
        (
            {"screen_episodes": 10, "curve_episodes": 10},
            "'screen_episodes' and 'curve_episodes' are the same key",
        ),
        (
            {"policy": "MlpPolicy", "dueling_stream_arch": [8]},
            "dueling_stream_arch is only allowed with policy DuelingMlpPolicy",
        ),
        ({"gama": 0.9}, "unknown key 'gama' (did you mean 'gamma'?)"),
        (
            {"implementation": "sb3", "policy": "MlpPolicy", "double_q": True},
            "stock SB3 DQN) has no double_q",
        ),
        ({"implementation": "sb3"}, "implementation sb3 (stock SB3 DQN) has no policy DuelingMlpPolicy"),
    ],
)
def test_bad_values_raise_config_error_naming_them(values: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_mapping(values)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_integral_floats_are_accepted_as_ints() -> None:
    assert RunConfig.from_mapping({"total_timesteps": 1e4}).total_timesteps == 10_000


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "config file not found"),
        ("", "config file is empty"),
        ("gamma: [0.9\n", "not valid YAML at line"),
        ("- 1\n- 2\n", "must hold a mapping"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not UTF-8 text"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str | bytes | None, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=None) as info:
        read_config_file(path)
    assert needle in str(info.value)


def test_flag_names_are_the_keys_and_old_spellings_are_aliases() -> None:
    from cartpole_dqn.config import alias_flags

    assert config_flag("total_timesteps") == "--total-timesteps"
    assert config_flag("env_id") == "--env-id"
    assert config_flag("prioritized_replay") == "--prioritized-replay"
    assert config_flag("target_update_interval") == "--target-update-interval"
    assert alias_flags("total_timesteps") == ["--timesteps", "--n-timesteps"]
    assert alias_flags("prioritized_replay") == ["--per"] and alias_flags("env_id") == ["--env"]


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("per: true\n", {"prioritized_replay": True}),
        ("prioritized_replay: true\n", {"prioritized_replay": True}),
        ("timesteps: 1234\nenv: Acrobot-v1\n", {"total_timesteps": 1234, "env_id": "Acrobot-v1"}),
        ("n_timesteps: 5e4\n", {"total_timesteps": 50_000}),  # PyYAML reads 5e4 as a string
        ("learning_rate: 1e-3\n", {"learning_rate": 1e-3}),  # ... and 1e-3 too
        ("buffer_size: 1_000\n", {"buffer_size": 1000}),
    ],
)
def test_yaml_accepts_the_old_spellings_and_numbers_pyyaml_reads_as_strings(
    tmp_path: Path, yaml_text: str, expected: dict[str, object]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    config = load_config(path)
    assert {k: getattr(config, k) for k in expected} == expected


def test_a_number_that_is_not_one_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: fast\n")
    with pytest.raises(ConfigError, match="learning_rate must be a number, got 'fast'"):
        load_config(path)


ZOO = Path(__file__).parent / "fixtures" / "zoo" / "dqn.yml"


def test_the_zoo_cartpole_block_is_our_zoo_baseline_on_our_agent() -> None:
    from cartpole_dqn.config import resolve_config_path

    ours = load_config(ZOO, {"env_id": "CartPole-v1"}).to_dict()
    baseline = load_config(resolve_config_path("sb3_zoo_baseline")).to_dict()
    assert ours.pop("implementation") == "cartpole_dqn" and baseline.pop("implementation") == "sb3"
    assert ours == baseline


@pytest.mark.parametrize(
    ("env_id", "baseline"),
    [
        ("Acrobot-v1", "acrobot_zoo_baseline"),
        ("MountainCar-v0", "mountaincar_zoo_baseline"),
        ("LunarLander-v3", "lunarlander_zoo_baseline"),
    ],
)
def test_each_zoo_baseline_config_is_the_zoo_block_for_its_env(env_id: str, baseline: str) -> None:
    """The baselines the four-env table compares with are the zoo's blocks as zoo users load them,
    evaluated under this package's protocol (the evaluation cadence is the protocol's, not the block's)."""
    from cartpole_dqn.config import resolve_config_path

    ours = load_config(ZOO, {"env_id": env_id}).to_dict()
    config = load_config(resolve_config_path(baseline)).to_dict()
    assert ours.pop("implementation") == "cartpole_dqn" and config.pop("implementation") == "sb3"
    ours.pop("eval_freq"), config.pop("eval_freq")
    assert ours == config


def test_the_zoo_acrobot_block_translates_gradient_steps_minus_one_and_sb3_defaults() -> None:
    config = load_config(ZOO, {"env_id": "Acrobot-v1"})
    assert config.env_id == "Acrobot-v1" and config.total_timesteps == 100_000
    assert config.gradient_steps == 4 == config.train_freq  # -1: as many as env steps collected
    assert config.net_arch == [256, 256] and config.learning_rate == pytest.approx(6.3e-4)
    assert config.exploration_initial_eps == 1.0 and config.tau == 1.0  # SB3's defaults fill the rest
    assert (config.policy, config.n_steps, config.double_q, config.prioritized_replay) == (
        "MlpPolicy",
        1,
        False,
        False,
    )


@pytest.mark.parametrize(
    ("env_id", "block", "needle"),
    [
        (
            None,
            None,
            "zoo file with one block per env: choose one with --env-id (Acrobot-v1, CartPole-v1, "
            "LunarLander-v3, MountainCar-v0)",
        ),
        (
            "CartPole-v0",
            None,
            "has no block for CartPole-v0; it has: Acrobot-v1, CartPole-v1, LunarLander-v3, MountainCar-v0",
        ),
        ("PongNoFrameskip-v4", None, "Atari envs"),
        ("CartPole-v1", "  learning_rate: lin_1e-3\n", "learning_rate 'lin_1e-3' is a linear schedule"),
        (
            "CartPole-v1",
            '  policy_kwargs: "dict(net_arch=[64], activation_fn=nn.Tanh)"\n',
            "activation_fn= is not a literal",
        ),
        (
            "CartPole-v1",
            "  policy_kwargs: \"__import__('os').system('true')\"\n",
            "policy_kwargs is not a literal",
        ),
        ("CartPole-v1", "  frame_stack: 4\n", "'frame_stack' (frame stacking) is not supported"),
        ("CartPole-v1", "  policy: CnnPolicy\n", "policy 'CnnPolicy' is not supported"),
        ("CartPole-v1", "  train_freq: [1, episode]\n", "train_freq [1, 'episode'] is not supported"),
    ],
)
def test_zoo_files_refuse_what_we_do_not_support_in_one_line(
    tmp_path: Path, env_id: str | None, block: str | None, needle: str
) -> None:
    path = tmp_path / "dqn.yml"
    text = ZOO.read_text()
    if block is not None:
        text = text.replace("\n# Tuned\nAcrobot-v1:", block + "\n# Tuned\nAcrobot-v1:", 1)  # last wins
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, None if env_id is None else {"env_id": env_id})
    assert needle in str(info.value) and "\n" not in str(info.value)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-2, max_value=300), max_size=4),
)
_keys = st.sampled_from([*RunConfig.field_names(), "bogus", "Gamma"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=8))
def test_validation_accepts_or_raises_config_error_only(values: dict[str, Any]) -> None:
    try:
        config = RunConfig.from_mapping(values)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        # What it accepted round-trips through YAML unchanged and is accepted again.
        assert RunConfig.from_mapping(yaml.safe_load(config.to_yaml())) == config


def test_atomic_writes_replace_whole_files_with_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from cartpole_dqn.run.artifacts import write_atomic

    target = tmp_path / "out.json"
    write_atomic(target, "one\n")
    write_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp files left behind


def test_a_model_save_on_a_folder_gone_read_only_is_a_write_error_even_when_cleanup_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a read-only remount even unlinking the temp file fails (EROFS); the user must still get
    the one-line WriteError, not the cleanup's traceback (seen in CI)."""
    import errno

    from cartpole_dqn.errors import WriteError
    from cartpole_dqn.run.solve import save_model_atomic

    class ReadOnlyModel:
        def save(self, path: Path) -> None:
            raise OSError(errno.EROFS, "Read-only file system", str(path))

    def unlink(self: Path, missing_ok: bool = False) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    best = tmp_path / "best_model.zip"
    best.write_bytes(b"previous")
    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(WriteError, match="Read-only file system; the previous best model is intact"):
        save_model_atomic(ReadOnlyModel(), best, "the previous best model is intact")  # type: ignore[arg-type]
    assert best.read_bytes() == b"previous"


def test_an_old_screen_episodes_key_still_loads(tmp_path: Path) -> None:
    """config.yaml files of earlier runs (resumable checkpoints among them) spell it screen_episodes."""
    path = tmp_path / "old.yaml"
    path.write_text("screen_episodes: 7\n")
    assert load_config(path).curve_episodes == 7


QRDQN_ZOO = Path(__file__).parent / "fixtures" / "zoo" / "qrdqn.yml"


def test_the_zoo_qrdqn_cartpole_block_is_our_qrdqn_zoo_baseline_on_our_agent() -> None:
    """With --algorithm qrdqn a zoo qrdqn.yml block takes sb3-contrib QRDQN's defaults (no gradient
    clipping among them) and its policy_kwargs' n_quantiles."""
    from cartpole_dqn.config import resolve_config_path

    ours = load_config(QRDQN_ZOO, {"env_id": "CartPole-v1", "algorithm": "qrdqn"}).to_dict()
    baseline = load_config(resolve_config_path("qrdqn_zoo_baseline")).to_dict()
    assert ours.pop("implementation") == "cartpole_dqn" and baseline.pop("implementation") == "sb3"
    assert ours == baseline
    assert (baseline["n_quantiles"], baseline["max_grad_norm"]) == (10, None)
    mountain = load_config(QRDQN_ZOO, {"env_id": "MountainCar-v0", "algorithm": "qrdqn"})
    assert mountain.exploration_initial_eps == 1.0 and mountain.tau == 1.0 and mountain.max_grad_norm is None
    assert mountain.n_quantiles == 25 and mountain.net_arch == [256, 256]


def test_a_qrdqn_zoo_block_without_algorithm_qrdqn_is_one_clear_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(QRDQN_ZOO, {"env_id": "CartPole-v1"})
    assert "'n_quantiles' is a QR-DQN setting" in str(info.value) and "--algorithm qrdqn" in str(info.value)


# --- zoo habits: policy_kwargs in a flat file, 5e4 on the command line, older env versions ---


@pytest.mark.parametrize(
    "text",
    [
        'policy_kwargs: "dict(net_arch=[128, 128])"\n',
        "policy_kwargs:\n  net_arch: [128, 128]\n",
        "policy_kwargs: {'net_arch': [128, 128]}\n",
    ],
)
def test_a_flat_config_reads_policy_kwargs_as_the_zoo_writes_them(tmp_path: Path, text: str) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text("learning_rate: 0.001\n" + text)
    config = load_config(path)
    assert config.net_arch == [128, 128] and config.learning_rate == 0.001


def test_a_flat_dueling_config_reads_stream_arch_from_policy_kwargs(tmp_path: Path) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text("policy: DuelingMlpPolicy\npolicy_kwargs: {net_arch: [32], stream_arch: [16]}\n")
    config = load_config(path)
    assert config.net_arch == [32] and config.dueling_stream_arch == [16]


def test_a_flat_config_giving_net_arch_twice_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text("net_arch: [64]\npolicy_kwargs: dict(net_arch=[128])\n")
    with pytest.raises(ConfigError, match="net_arch is given twice"):
        load_config(path)
    path.write_text("policy_kwargs: dict(activation_fn=nn.Tanh)\n")
    with pytest.raises(ConfigError, match="activation_fn= is not a literal"):
        load_config(path)


@pytest.mark.parametrize("module", ["train", "tune", "benchmark"])
def test_integer_flags_take_5e4_as_yaml_does(module: str) -> None:
    import importlib

    parser = importlib.import_module(f"cartpole_dqn.{module}").build_parser()
    args = parser.parse_args(["--total-timesteps", "5e4"])
    assert (args.total_timesteps if module == "train" else args.timesteps) == 50_000
    assert parser.parse_args(["--total-timesteps", "50_000"]) is not None


def test_a_non_integer_flag_value_is_one_clear_line() -> None:
    from cartpole_dqn.train import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--total-timesteps", "5.5"])
    assert exit_info.value.code == 2


def test_an_older_zoo_files_v2_block_serves_v3_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dqn.yml"
    path.write_text(
        "LunarLander-v2:\n  n_timesteps: !!float 1e5\n  policy: 'MlpPolicy'\n"
        "  learning_rate: !!float 6.3e-4\n"
        "CartPole-v1:\n  n_timesteps: !!float 5e4\n  policy: 'MlpPolicy'\n"
    )
    config = load_config(path, {"env_id": "LunarLander-v3"})
    assert config.env_id == "LunarLander-v3" and config.learning_rate == pytest.approx(6.3e-4)
    assert config.total_timesteps == 100_000
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1 and "no LunarLander-v3 block; using its LunarLander-v2 block" in err[0]
    with pytest.raises(ConfigError, match="has no block for Acrobot-v1"):
        load_config(path, {"env_id": "Acrobot-v1"})
