"""``python -m cartpole_dqn.evaluate MODEL``: score a saved model greedily, optionally record a GIF.

MODEL is a ``model.zip`` (SB3 format: it unpickles code, so load only trusted files), a run folder
holding one, or a weights-only export folder. The env id and threshold come from the
``config.yaml`` beside the model (or the export's description), unless ``--env`` / ``--threshold``
say otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cartpole_dqn.cli import OneLineParser, run_cli
from cartpole_dqn.config import RunConfig, integer
from cartpole_dqn.errors import UsageError

PROG = "python -m cartpole_dqn.evaluate"


def build_parser(prog: str = PROG) -> OneLineParser:
    parser = OneLineParser(prog=prog, description="Score a saved model over greedy episodes.")
    parser.add_argument(
        "model",
        type=Path,
        help="model.zip, a run folder containing model.zip, or an export folder (policy.json)",
    )
    parser.add_argument(
        "--eval-episodes",
        "--episodes",
        dest="episodes",
        type=integer,
        default=100,
        help="greedy episodes (default 100)",
    )
    parser.add_argument("--seed", type=integer, default=12345, help="reset seed of the evaluation envs")
    parser.add_argument(
        "--model",
        dest="which",
        choices=("best", "final"),
        default="best",
        help="with a run folder: its best checkpoint (model.zip) or the final weights (final_model.zip)",
    )
    parser.add_argument(
        "--env-id",
        "--env",
        dest="env",
        default=None,
        help="env id (default: from config.yaml beside the model)",
    )
    parser.add_argument("--threshold", type=float, default=None, help="solve threshold (default: env spec)")
    parser.add_argument(
        "--gif",
        type=Path,
        default=None,
        help="record one greedy episode to this file: .gif, or .mp4 (with the 'video' extra)",
    )
    parser.add_argument("--gif-fps", type=integer, default=30, help="recording frame rate (default 30)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
    if args.gif_fps < 1:
        raise UsageError(f"--gif-fps must be >= 1, got {args.gif_fps}")
    if args.gif is not None:
        if args.gif.suffix.lower() not in (".gif", ".mp4"):
            raise UsageError(f"--gif {args.gif}: the file must end in .gif or .mp4")
        if args.gif.suffix.lower() == ".mp4":
            import importlib.util

            if importlib.util.find_spec("imageio_ffmpeg") is None:
                raise UsageError("--gif PATH.mp4 needs imageio's ffmpeg plugin: pip install -e '.[video]'")
        if args.gif.exists():
            raise UsageError(f"--gif {args.gif} already exists; refusing to overwrite it")
        if not args.gif.parent.is_dir():
            raise UsageError(f"--gif folder does not exist: {args.gif.parent}")

    from cartpole_dqn.run import models
    from cartpole_dqn.run.onnx_export import OnnxPolicy, onnx_file, saved_description

    graph = onnx_file(args.model)
    policy: Any
    if graph is not None:  # an ONNX export (or a bare .onnx file): run in ONNX Runtime
        description = saved_description(graph)
        policy = OnnxPolicy(graph)
        model_path = graph
        saved = (
            RunConfig.from_mapping(
                {"env_id": description["env_id"], "threshold": description.get("threshold")},
                source=str(graph.parent / models.DESCRIPTION),
            )
            if description.get("env_id")
            else None
        )
    elif models.is_export(args.model):
        exported = models.load_policy(args.model)
        model_path, policy, saved = args.model, exported.policy, exported.saved_config(args.model)
    else:
        model_path = models.resolve_model_path(args.model, args.which)
        saved = models.model_config(model_path)
        policy = None  # loaded once the env is known good
    overrides: dict[str, Any] = {}
    if args.env is not None:
        overrides["env_id"] = args.env
    if args.threshold is not None:
        overrides["threshold"] = args.threshold
    elif args.env is not None:
        overrides["threshold"] = None  # another env: take its own spec's threshold
    base = saved if saved is not None else RunConfig()
    config = base.replace(**overrides) if overrides else base

    from cartpole_dqn.run.envs import env_info_of
    from cartpole_dqn.run.evaluation import evaluate_greedy, record_gif
    from cartpole_dqn.run.verdict import verdict_lines

    info = env_info_of(config)
    if policy is None:
        policy = models.load_model(model_path).policy
    if not models.fits(policy, config.env_id):
        raise UsageError(
            f"model {model_path} does not fit env '{config.env_id}': it expects observations of shape "
            f"{policy.observation_space.shape} and {policy.action_space.n} actions"
        )
    result = evaluate_greedy(policy, config.env_id, args.episodes, args.seed, info.max_episode_steps)
    print(f"{config.env_id} · {model_path} · seed {args.seed}")
    lines = verdict_lines(
        "greedy return",
        result.mean,
        result.std,
        result.episodes,
        info.threshold,
        info.max_return,
        result.min,
        result.max,
    )
    print("\n".join(lines))
    if args.gif is not None:
        gif = record_gif(policy, config.env_id, args.gif, args.seed, args.gif_fps)
        print(
            f"  {'recording':<18}{args.gif} ({gif.frames} frames, {gif.width}x{gif.height}, "
            f"{gif.fps:.1f} fps; episode return {gif.episode_return:.1f}, reset seed {args.seed})"
        )
    return 0


def cli(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """The command line: ``main`` with one-line errors and exit statuses."""
    return run_cli(prog, lambda args: main(args, prog), argv, flags=None)


if __name__ == "__main__":
    sys.exit(cli())
