"""Exception types that the command-line front ends turn into one-line messages.

A :class:`UsageError` is the user's mistake (bad value, bad file, bad folder): the CLIs print its
message on one line and exit with status 2. Library code words its messages in library terms and
says which input was wrong in ``about`` (e.g. ``"run_name"``); each CLI names its own flag for it.
Anything else is a bug or a runtime fault.
"""

from __future__ import annotations

# Defined with the plug-ins, which raise it; re-exported for the command lines that catch it.
from cartpole_dqn.dqn.divergence import DivergenceError as DivergenceError


class UsageError(Exception):
    """A mistake in what the user asked for; the message names the bad value and what is allowed.

    :param about: the input the message is about, in library terms (``"runs_root"``, ``"storage"``,
        ...), or None; a command-line front end maps it to the flag that set it
    """

    def __init__(self, message: str, about: str | None = None) -> None:
        super().__init__(message)
        self.about = about


class ConfigError(UsageError):
    """A run configuration value, key or file is invalid."""


class WriteError(RuntimeError):
    """An artifact could not be written (full disk, read-only folder); what was written before is intact."""


def write_error(what: str, exc: OSError, kept: str) -> WriteError:
    """A :class:`WriteError` naming the artifact, the system's reason and what is still intact."""
    reason = exc.strerror or type(exc).__name__
    return WriteError(f"cannot write {what}: {reason}; {kept}")


class StorageLost(RuntimeError):
    """The study's database went away mid-sweep; finished trials are kept, stopped ones re-run."""


def reason_of(exc: BaseException) -> str:
    """An exception's first line for a one-line message (its type's name when it says nothing)."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
