"""``python -m cartpole_dqn.evaluate MODEL``: score a saved model greedily, optionally record a GIF.

The command lives in :mod:`cartpole_dqn.commands.evaluate`; this entry point keeps
``python -m cartpole_dqn.evaluate`` working.
"""

import sys

from cartpole_dqn.commands.evaluate import PROG, build_parser, cli, main

__all__ = ["PROG", "build_parser", "cli", "main"]

if __name__ == "__main__":
    sys.exit(cli())
