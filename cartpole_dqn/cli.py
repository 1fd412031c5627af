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

from cartpole_dqn.config import RunConfig, alias_flags, config_flag, field_kind
from cartpole_dqn.errors import DivergenceError, StorageLost, UsageError, WriteError
from cartpole_dqn.run.artifacts import release_held_runs

# Flags users of other tools type for ours (rl-baselines3-zoo, SB3 scripts): suggested on a miss.
FLAG_SYNONYMS = {"--lr": "--learning-rate", "--steps": "--total-timesteps", "--env-name": "--env-id"}


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line (no usage dump), exit status 2; an
    unknown flag gets a "did you mean" from the parser's own flags."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}{self._suggestion(message)} (see --help)\n")

    def _suggestion(self, message: str) -> str:
        import difflib
        import re

        match = re.search(r"unrecognized arguments: (--?[\w-]+)", message)
        if match is None:
            return ""
        typed = match.group(1).split("=")[0]
        known = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
        if FLAG_SYNONYMS.get(typed) in known:
            return f"; did you mean {FLAG_SYNONYMS[typed]}?"
        close = difflib.get_close_matches(typed, known, n=1, cutoff=0.6)
        return f"; did you mean {close[0]}?" if close else ""


def add_config_flags(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """One flag per :class:`RunConfig` field, named like the key; unset flags stay ``None`` so the
    config file decides. The help shows the built-in default."""
    group = parser.add_argument_group("run config (override the --config file; built-in defaults shown)")
    defaults = RunConfig()
    for f in dataclasses.fields(RunConfig):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        shown = (
            "none"
            if default is None
            else (" ".join(map(str, default)) if isinstance(default, list) else default)
        )
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": None,
            "help": (
                f.metadata["help"]
                if "(default" in f.metadata["help"]  # the help already says what the default means
                else f"{f.metadata['help']} (default: {shown})"
            ).replace("%", "%%"),
        }
        kwargs.update(field_kind(f).flag)
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
            kwargs.pop("metavar", None)
        group.add_argument(config_flag(f.name), *alias_flags(f.name), **kwargs)


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
        release_held_runs()  # a command refused in process (e.g. a test's) leaves no .lock behind
        flag = (flags or {}).get(exc.about or "")
        print(f"{prog}: error: {f'argument {flag}: ' if flag else ''}{exc}", file=sys.stderr)
        return 2
    except (DivergenceError, WriteError, StorageLost) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
