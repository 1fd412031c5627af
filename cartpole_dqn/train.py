"""``python -m cartpole_dqn.train``: train DQN until solved (or the budget ends) and report the verdict.

The command lives in :mod:`cartpole_dqn.commands.train`; this entry point keeps
``python -m cartpole_dqn.train`` working.
"""

import sys

from cartpole_dqn.commands.train import PROG, build_parser, cli, main

__all__ = ["PROG", "build_parser", "cli", "main"]

if __name__ == "__main__":
    sys.exit(cli())
