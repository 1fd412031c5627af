"""Shared command-line plumbing: one-line errors with exit status 2, and flags generated from the config.

Nothing here imports torch, SB3 or optuna: ``--help`` and every argument or config error answer
before any heavy import.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from cartpole_dqn.config import KEY_ALIASES, RunConfig, config_flag, field_kind
from cartpole_dqn.errors import DivergenceError, UsageError


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_config_flags(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """One flag per :class:`RunConfig` field; unset flags stay ``None`` so the config file decides."""
    group = parser.add_argument_group("run config (override the --config file)")
    for f in dataclasses.fields(RunConfig):
        if f.name in skip:
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": f.metadata["help"]}
        kwargs.update(field_kind(f).flag)
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
            kwargs.pop("metavar", None)
        aliases = [f"--{old.replace('_', '-')}" for old, name in KEY_ALIASES.items() if name == f.name]
        group.add_argument(config_flag(f.name), *aliases, **kwargs)


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config values given on the command line."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(RunConfig)
        if getattr(args, f.name, None) is not None
    }


def run_cli(
    prog: str,
    main: Callable[[Sequence[str] | None], int],
    argv: Sequence[str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> int:
    """Run ``main``; a user mistake becomes one stderr line and exit 2, divergence one line and exit 1.

    :param flags: the flag that sets each input a library error can be ``about`` (e.g.
        ``{"run_name": "--run-name"}``); the message then names it, as argparse does.
    """
    try:
        return main(argv)
    except UsageError as exc:
        flag = (flags or {}).get(exc.about or "")
        print(f"{prog}: error: {f'argument {flag}: ' if flag else ''}{exc}", file=sys.stderr)
        return 2
    except DivergenceError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
