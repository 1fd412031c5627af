"""Trials in TensorBoard's HParams dashboard.

Each finished trial writes one HParams *session* (its parameters, study and state) with its final
metrics as scalars, in ``<log_dir>/tune/<study>/trial-N/hparams``: beside its per-seed training
runs (``trial-N/seed-S``), not above them, so the dashboard's metric columns are the trial's
metrics rather than every training curve. No experiment summary is written: TensorBoard then
builds the table's columns from all sessions it finds, so trials of several studies (and of other
search spaces) can be compared in one dashboard.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

METRICS = (
    "trial/value",
    "trial/solved_seeds",
    "trial/seeds",
    "trial/median_steps_to_solve",
    "trial/median_wall_to_solve_s",
)


def _hparam_value(value: Any) -> bool | int | float | str:
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def write_trial_session(folder: Path, params: dict[str, Any], metrics: dict[str, float]) -> None:
    """Write one HParams session (``params``) and its ``metrics`` (scalars at step 0) into ``folder``."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    hparam_dict = {key: _hparam_value(value) for key, value in params.items()}
    finite = {key: (value if math.isfinite(value) else float("nan")) for key, value in metrics.items()}
    _, session_start, session_end = hparams(hparam_dict, finite)
    writer = SummaryWriter(log_dir=str(folder))
    try:
        file_writer = writer._get_file_writer()
        file_writer.add_summary(session_start)
        file_writer.add_summary(session_end)
        for key, value in finite.items():
            writer.add_scalar(key, value, 0)
    finally:
        writer.close()
