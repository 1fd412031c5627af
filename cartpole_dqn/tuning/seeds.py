"""The tuner's seeds, in ranges disjoint by construction.

Benchmarks use seeds from 1,000 (below the first range), trials train on [10,000, 900,000), the
selection (``--validate-seeds``) re-trains on [900,000, 950,000), and a winning candidate's estimate
comes from 950,000 and up. Every trial of a sweep trains on the same
``K`` tuning seeds, so trials are compared on paired seeds: a config's luck on a seed is shared
by every config it is ranked against.
"""

from __future__ import annotations

TUNING_SEED_START = 10_000
VALIDATION_SEED_START = 900_000
SWEEP_SEED_STRIDE = 10_000  # --seed s takes its tuning seeds s * 10,000 further on (wrapping in the range)


def tuning_seeds(sweep_seed: int, count: int) -> list[int]:
    """The ``count`` training seeds every trial of a sweep run with ``--seed sweep_seed`` uses."""
    span = VALIDATION_SEED_START - TUNING_SEED_START
    return [TUNING_SEED_START + (sweep_seed * SWEEP_SEED_STRIDE + i) % span for i in range(count)]


CONFIRMATION_SEED_START = 950_000
MAX_VALIDATION_SEEDS = CONFIRMATION_SEED_START - VALIDATION_SEED_START


def validation_seeds(count: int) -> list[int]:
    """The seeds ``--validate-seeds`` re-trains the candidates on: never a trial's seed."""
    return list(range(VALIDATION_SEED_START, VALIDATION_SEED_START + count))


def confirmation_seeds(count: int) -> list[int]:
    """The seeds a winning candidate is re-trained on for its estimate: neither a trial's nor a
    selection seed."""
    return list(range(CONFIRMATION_SEED_START, CONFIRMATION_SEED_START + count))
