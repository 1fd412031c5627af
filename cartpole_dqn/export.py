"""``python -m cartpole_dqn.export RUN_DIR --out DIR``: share a policy as weights + JSON, no pickle.

The export is a torch ``state_dict`` (``policy.pt``) plus a JSON description of the network
(``policy.json``); :func:`cartpole_dqn.load_policy` rebuilds it with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cartpole_dqn.cli import OneLineParser, run_cli
from cartpole_dqn.errors import UsageError

PROG = "python -m cartpole_dqn.export"
FLAGS = {"out": "--out"}


def build_parser(prog: str = PROG) -> OneLineParser:
    parser = OneLineParser(prog=prog, description="Export a run's policy as weights + JSON (no pickle).")
    parser.add_argument("run", type=Path, help="run folder (with model.zip) or a model.zip")
    parser.add_argument("--out", type=Path, required=True, help="new folder for policy.pt + policy.json")
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
    models.export_policy(model, args.out, extra)
    print(f"exported {model_path} -> {args.out / models.WEIGHTS}, {args.out / models.DESCRIPTION}")
    return 0


def cli(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """The command line: ``main`` with one-line errors and exit statuses."""
    return run_cli(prog, lambda args: main(args, prog), argv, flags=FLAGS)


if __name__ == "__main__":
    sys.exit(cli())
