"""``python -m cartpole_dqn.export RUN_DIR --out DIR``: share a policy as weights + JSON, no pickle.

The export is a torch ``state_dict`` (``policy.pt``) plus a JSON description of the network
(``policy.json``); :func:`cartpole_dqn.load_policy` rebuilds it with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cartpole_dqn.cli import OneLineParser, run_cli
from cartpole_dqn.errors import UsageError
from cartpole_dqn.run.artifacts import RESULTS

PROG = "python -m cartpole_dqn.export"
FLAGS = {"out": "--out"}


def build_parser(prog: str = PROG) -> OneLineParser:
    parser = OneLineParser(prog=prog, description="Export a run's policy as weights + JSON (no pickle).")
    parser.add_argument("run", type=Path, help="run folder (with model.zip) or a model.zip")
    parser.add_argument(
        "--out", type=Path, required=True, help="new folder for the export, its policy.json and README.md"
    )
    parser.add_argument(
        "--format",
        choices=("torch", "onnx"),
        default="torch",
        help="torch: weights only (policy.pt, loaded with cartpole_dqn.load_policy); onnx: the greedy "
        "policy as an ONNX graph (policy.onnx, runs in ONNX Runtime without torch; the onnx extra) "
        "(default: torch)",
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.out.exists():
        raise UsageError(f"--out {args.out} already exists; refusing to overwrite it")
    from cartpole_dqn.run import models

    model_path = models.resolve_model_path(args.run)
    model = models.load_model(model_path)
    saved = models.model_config(model_path)
    extra: dict[str, Any] = {"source": str(model_path)}
    if saved is not None:
        extra.update(env_id=saved.env_id, threshold=saved.threshold)
    results = read_results(model_path.parent / RESULTS)
    extra["score"] = score_of(results)
    extra["versions"] = results.get("versions") or {pkg: version(pkg) for pkg in VERSIONED}
    config_yaml = saved.to_yaml() if saved is not None else None
    if args.format == "onnx":
        from cartpole_dqn.run.onnx_export import ONNX_FILE, export_onnx, require

        require("onnx", "--format onnx")
        args.out.mkdir(parents=True)
        description = {**export_onnx(model, args.out / ONNX_FILE), **extra}
        (args.out / models.DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")
        (args.out / "README.md").write_text(onnx_model_card(description, config_yaml))
        written = args.out / ONNX_FILE
    else:
        models.export_policy(model, args.out, extra)
        (args.out / "README.md").write_text(model_card(extra, config_yaml))
        written = args.out / models.WEIGHTS
    print(f"exported {model_path} -> {written}, {args.out / models.DESCRIPTION}, {args.out / 'README.md'}")
    return 0


VERSIONED = ("cartpole_dqn", "torch", "stable-baselines3", "gymnasium", "numpy")


def read_results(path: Path) -> dict[str, Any]:
    """The run's results.json, if the model comes from a run folder (else empty)."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def score_of(results: dict[str, Any]) -> dict[str, Any] | None:
    """The saved model's own re-evaluation (fresh seeds), as the run recorded it."""
    if "eval_mean" not in results:
        return None
    keys = (
        "eval_mean",
        "eval_std",
        "eval_episodes",
        "final_eval_seed",
        "threshold",
        "solved",
        "steps_to_solve",
    )
    return {key: results.get(key) for key in keys}


def scored_text(score: dict[str, Any] | None) -> str:
    if score is None:
        return "No score recorded (the model did not come from a run folder with results.json)."
    return (
        f"Greedy return **{score['eval_mean']:.1f} ± {score['eval_std']:.1f}** over "
        f"{score['eval_episodes']} episodes (reset seed {score['final_eval_seed']}, seeds never used "
        f"in training), threshold {score['threshold']:g}; solved during training: "
        f"{'yes, at step ' + format(score['steps_to_solve'], ',') if score['solved'] else 'no'}."
    )


def onnx_model_card(description: dict[str, Any], config_yaml: str | None) -> str:
    """README.md of an ONNX export: the graph's interface, how it scored, a complete ORT example."""
    env_id = description.get("env_id") or "the env"
    shape = ", ".join(str(d) for d in description["input"]["shape"])
    versions = ", ".join(f"{k} {v}" for k, v in description.get("versions", {}).items())
    config = "" if config_yaml is None else f"\n## Config\n\n```yaml\n{config_yaml.rstrip()}\n```\n"
    return (
        f"# Greedy {description['algorithm'].upper()} policy for {env_id} (cartpole_dqn ONNX export)\n\n"
        f"Source: `{description.get('source')}`. Format: ONNX, opset {description['opset']} "
        f"(`policy.onnx`); runs in ONNX Runtime, no torch needed.\n\n"
        f"- input `obs`: float32, shape ({shape}): raw observations as the env returns them, any batch "
        "size; the graph includes all preprocessing (SB3's flatten), so nothing is to be done first\n"
        "- output `action`: int64, shape (batch,): the greedy action\n"
        "- output `q_values`: float32, shape (batch, n_actions): the Q-values it maximizes"
        + (" (the mean over quantiles)" if description["algorithm"] == "qrdqn" else "")
        + f"\n\n## Score\n\n{scored_text(description.get('score'))}\n\n"
        "## Run it\n\n```python\nimport gymnasium as gym\nimport numpy as np\nimport onnxruntime as ort\n\n"
        'session = ort.InferenceSession("policy.onnx")\n'
        f'env = gym.make("{description.get("env_id") or "CartPole-v1"}")\n'
        "obs, _ = env.reset(seed=0)\ntotal, done = 0.0, False\nwhile not done:\n"
        '    action = session.run(["action"], {"obs": obs[None].astype(np.float32)})[0][0]\n'
        "    obs, reward, terminated, truncated, _ = env.step(int(action))\n"
        "    total, done = total + float(reward), terminated or truncated\n"
        'print(f"return {total:.1f}")\n```\n\n'
        "or score it: `python -m cartpole_dqn.evaluate path/to/this/folder`.\n"
        f"{config}\n## Versions\n\n{versions}\n"
    )


def model_card(description: dict[str, Any], config_yaml: str | None) -> str:
    """README.md of an export: what it is, how it scored, how to load it."""
    env_id = description.get("env_id", "?")
    scored = scored_text(description.get("score"))
    versions = ", ".join(f"{k} {v}" for k, v in description.get("versions", {}).items())
    config = "" if config_yaml is None else f"\n## Config\n\n```yaml\n{config_yaml.rstrip()}\n```\n"
    return (
        f"# DQN policy for {env_id} (cartpole_dqn export)\n\n"
        f"Source: `{description.get('source')}`. Weights only (`policy.pt`, a torch state_dict) and "
        "the network's description (`policy.json`): loading unpickles nothing.\n\n"
        f"## Score\n\n{scored}\n\n"
        "## Load\n\n```python\nfrom cartpole_dqn import load_policy\n\n"
        'policy = load_policy("path/to/this/folder")\n'
        "action, _ = policy.predict(observation, deterministic=True)\n```\n\n"
        "or score it: `python -m cartpole_dqn.evaluate path/to/this/folder`.\n"
        f"{config}\n## Versions\n\n{versions}\n"
    )


def cli(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """The command line: ``main`` with one-line errors and exit statuses."""
    return run_cli(prog, lambda args: main(args, prog), argv, flags=FLAGS)


if __name__ == "__main__":
    sys.exit(cli())
