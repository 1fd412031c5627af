"""``python -m cartpole_dqn.benchmark``: many seeds per config, side by side with the SB3 baseline.

The command lives in :mod:`cartpole_dqn.commands.benchmark`; this entry point keeps
``python -m cartpole_dqn.benchmark`` working.
"""

import sys

from cartpole_dqn.commands.benchmark import PROG, build_parser, cli, main

__all__ = ["PROG", "build_parser", "cli", "main"]

if __name__ == "__main__":
    sys.exit(cli())
