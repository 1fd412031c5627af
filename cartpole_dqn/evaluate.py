"""``python -m cartpole_dqn.evaluate MODEL``: score a saved model greedily, optionally record a GIF.

MODEL is a ``model.zip`` (SB3 format: it unpickles code, so load only trusted files) or a run
folder holding one. The env id and threshold come from the ``config.yaml`` beside the model,
unless ``--env`` / ``--threshold`` say otherwise.
"""

from __future__ import annotations

import sys
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cartpole_dqn.cli import OneLineParser, run_cli
from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.errors import UsageError

PROG = "python -m cartpole_dqn.evaluate"


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description="Score a saved model over greedy episodes.")
    parser.add_argument(
        "model",
        type=Path,
        help="model.zip, a run folder containing model.zip, or an export folder (policy.json)",
    )
    parser.add_argument("--episodes", type=int, default=100, help="greedy episodes (default 100)")
    parser.add_argument("--seed", type=int, default=12345, help="reset seed of the evaluation envs")
    parser.add_argument("--env", default=None, help="env id (default: from config.yaml beside the model)")
    parser.add_argument("--threshold", type=float, default=None, help="solve threshold (default: env spec)")
    parser.add_argument("--gif", type=Path, default=None, help="record one greedy episode to this GIF file")
    parser.add_argument("--gif-fps", type=int, default=30, help="GIF frame rate (default 30)")
    return parser


def resolve_model_path(path: Path) -> Path:
    if path.is_dir():
        path = path / "model.zip"
    if not path.exists():
        raise UsageError(f"model file not found: {path}")
    if not path.is_file():
        raise UsageError(f"model path is not a file: {path}")
    return path


def load_model(path: Path) -> Any:
    """Load an SB3 model zip saved by this package; any unreadable file is a :class:`UsageError`."""
    from cartpole_dqn.agent import DQNAgent

    if not zipfile.is_zipfile(path):
        raise UsageError(f"not a model file (expected an SB3 .zip): {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DQNAgent.load(path, device="cpu")
    except Exception as exc:  # corrupt archive, missing members, unpickling failures
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot load model {path}: {reason}") from None


def model_config(model_path: Path) -> RunConfig | None:
    """The run config saved beside a model, if there is one."""
    candidate = model_path.parent / "config.yaml"
    return load_config(candidate) if candidate.is_file() else None


def record_gif(policy: Any, env_id: str, path: Path, seed: int, fps: int) -> int:
    """Render one greedy episode to an animated GIF; returns the number of frames written."""
    import gymnasium as gym
    import imageio.v3 as iio

    env = gym.make(env_id, render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=seed)
        frames: list[Any] = [env.render()]
        done = False
        while not done:
            action, _ = policy.predict(obs[None], deterministic=True)
            obs, _, terminated, truncated, _ = env.step(int(np.asarray(action).reshape(-1)[0]))
            frames.append(env.render())
            done = terminated or truncated
    finally:
        env.close()
    images = [np.asarray(f)[::2, ::2] for f in frames if f is not None]  # half size: a smaller file
    iio.imwrite(path, np.stack(images), extension=".gif", duration=1000 / fps, loop=0)
    return len(images)


def _exported_config(description: dict[str, Any], folder: Path) -> RunConfig | None:
    """The env id and threshold recorded in an export's policy.json, as a config."""
    if "env_id" not in description:
        return None
    return RunConfig.from_mapping(
        {"env_id": description["env_id"], "threshold": description.get("threshold")}, source=str(folder)
    )


def _fits(model: Any, env_id: str) -> bool:
    """Whether a policy's observation and action spaces match the env's."""
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        return bool(
            model.observation_space.shape == env.observation_space.shape
            and model.action_space.n == env.action_space.n  # type: ignore[attr-defined]
        )
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
    if args.gif_fps < 1:
        raise UsageError(f"--gif-fps must be >= 1, got {args.gif_fps}")
    if args.gif is not None:
        if args.gif.exists():
            raise UsageError(f"--gif {args.gif} already exists; refusing to overwrite it")
        if not args.gif.parent.is_dir():
            raise UsageError(f"--gif folder does not exist: {args.gif.parent}")
    exported = None
    if args.model.is_dir() and (args.model / "policy.json").is_file():
        from cartpole_dqn.export import load_policy

        exported = load_policy(args.model)
    model_path = args.model if exported is not None else resolve_model_path(args.model)
    saved = (
        _exported_config(exported.description, model_path)
        if exported is not None
        else model_config(model_path)
    )
    overrides: dict[str, Any] = {}
    if args.env is not None:
        overrides["env_id"] = args.env
    if args.threshold is not None:
        overrides["threshold"] = args.threshold
    elif args.env is not None:
        overrides["threshold"] = None  # another env: take its own spec's threshold
    base = saved if saved is not None else RunConfig()
    config = base.replace(**overrides) if overrides else base

    from cartpole_dqn.envs import check_env
    from cartpole_dqn.evaluation import evaluate_policy
    from cartpole_dqn.report import verdict_lines

    info = check_env(config)
    policy = exported.policy if exported is not None else load_model(model_path).policy
    if not _fits(policy, config.env_id):
        raise UsageError(
            f"model {model_path} does not fit env '{config.env_id}': it expects observations of shape "
            f"{policy.observation_space.shape} and {policy.action_space.n} actions"
        )
    result = evaluate_policy(policy, config.env_id, args.episodes, args.seed, info.max_episode_steps)
    print(f"{config.env_id} · {model_path} · seed {args.seed}")
    print(
        "\n".join(
            verdict_lines(
                "greedy return",
                result.mean,
                result.std,
                result.episodes,
                info.threshold,
                info.max_return,
                result.min,
                result.max,
            )
        )
    )
    if args.gif is not None:
        frames = record_gif(policy, config.env_id, args.gif, args.seed, args.gif_fps)
        print(f"  {'gif':<18}{args.gif} ({frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
