"""``python -m cartpole_dqn.export RUN_DIR --out DIR``: share a policy as weights + JSON, no pickle.

The command lives in :mod:`cartpole_dqn.commands.export`; this entry point keeps
``python -m cartpole_dqn.export`` working.
"""

import sys

from cartpole_dqn.commands.export import PROG, build_parser, cli, main

__all__ = ["PROG", "build_parser", "cli", "main"]

if __name__ == "__main__":
    sys.exit(cli())
