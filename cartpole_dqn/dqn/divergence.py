"""The one error the plug-ins raise themselves (plain Python: importing it needs no torch)."""

from __future__ import annotations


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or Q-value; the run cannot continue meaningfully."""
