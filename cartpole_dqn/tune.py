"""``python -m cartpole_dqn.tune --trials 50``: an Optuna sweep over the run config.

The command lives in :mod:`cartpole_dqn.commands.tune`; this entry point keeps
``python -m cartpole_dqn.tune`` working.
"""

import sys

from cartpole_dqn.commands.tune import PROG, build_parser, cli, main

__all__ = ["PROG", "build_parser", "cli", "main"]

if __name__ == "__main__":
    sys.exit(cli())
