"""``python -m cartpole_dqn`` lists the commands; ``cartpole-dqn COMMAND ...`` runs one.

``cartpole-dqn train --seed 1`` is ``python -m cartpole_dqn.train --seed 1``, and so on for every
command (the console script installed with the package, as rl-zoo3 and SB3 tooling users expect).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from cartpole_dqn import __version__

COMMANDS = {
    "train": "train DQN on a Gymnasium env until solved (or the budget ends)",
    "evaluate": "score a saved model over greedy episodes; record a GIF",
    "tune": "Optuna sweep over the run config (resumable, parallel, PostgreSQL)",
    "benchmark": "many seeds per config, side by side with the SB3 baseline",
    "export": "share a policy as weights + JSON (no pickle)",
}


def usage(prog: str) -> str:
    width = max(map(len, COMMANDS))
    lines = [
        f"usage: {prog} COMMAND [ARGS ...]   (or: python -m cartpole_dqn.COMMAND [ARGS ...])",
        "",
        f"cartpole_dqn {__version__}: DQN done right on Gymnasium, built on Stable-Baselines3.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()),
        "",
        f"'{prog} COMMAND --help' shows a command's options; curves: tensorboard --logdir tensorboard_logs",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "cartpole-dqn") -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(prog))
        return 0
    if args[0] in ("-V", "--version"):
        print(f"cartpole_dqn {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        import difflib

        hint = difflib.get_close_matches(command, COMMANDS, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        print(
            f"{prog}: error: unknown command '{command}'{suggestion}; commands: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"cartpole_dqn.commands.{command}")
    code: int = module.cli(rest, prog=f"{prog} {command}")
    return code


if __name__ == "__main__":
    sys.exit(main(prog="python -m cartpole_dqn"))
