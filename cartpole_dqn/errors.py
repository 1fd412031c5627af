"""Exception types that the command-line front ends turn into one-line messages.

A :class:`UsageError` is the user's mistake (bad flag, bad file, bad value): the CLIs print
its message on one line and exit with status 2. Anything else is a bug or a runtime fault.
"""

from __future__ import annotations


class UsageError(Exception):
    """A mistake in what the user asked for; the message names the bad value and what is allowed."""


class ConfigError(UsageError):
    """A run configuration value, key or file is invalid."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or Q-value; the run cannot continue meaningfully."""
