"""A benchmark's journal: one line per finished run, so an interrupted benchmark resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cartpole_dqn.errors import UsageError


def journal_path(stem: Path) -> Path:
    """Where a benchmark records each finished run as it goes (deleted once the record is written)."""
    return stem.with_name(stem.name + ".runs.jsonl")


def read_journal(path: Path, header: dict[str, Any]) -> tuple[str, dict[tuple[str, int], Any]]:
    """The stamp and the finished runs of an interrupted benchmark, which must have run these configs."""
    from cartpole_dqn.run.results import RunResult

    name = path.name
    if not name.endswith(".runs.jsonl") or not path.is_file():
        raise UsageError(f"{path} is not a benchmark's .runs.jsonl file", about="resume")
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        recorded = lines[0]
        finished = {(r["label"], r["seed"]): RunResult.from_dict(r) for r in lines[1:]}
    except (ValueError, KeyError, TypeError, IndexError):
        raise UsageError(f"{path} is not a readable benchmark journal", about="resume") from None
    if recorded != json.loads(json.dumps(header)):
        raise UsageError(
            f"{path} was written by a benchmark of other configs or seeds; resume with the command that "
            "started it",
            about="resume",
        )
    stamp = name.removesuffix(".runs.jsonl").rsplit("-", 2)
    return f"{stamp[-2]}-{stamp[-1]}", finished
