"""What users read: the progress bar, verdicts, counts and ``--help`` say what they mean."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cartpole_dqn.run.verdict import plural, verdict_lines

COMMANDS = ["train", "tune", "evaluate", "export", "benchmark"]


@pytest.mark.parametrize("command", COMMANDS)
def test_no_help_text_says_its_default_twice(command: str) -> None:
    parser = importlib.import_module(f"cartpole_dqn.{command}").build_parser()
    for action in parser._actions:
        assert (action.help or "").count("(default") <= 1, (command, action.option_strings, action.help)


def test_returns_are_shown_with_one_decimal_and_counts_agree_in_number() -> None:
    lines = verdict_lines("final eval", -90.8902, 0.0, 1, 200.0, None, -90.8902, -90.8902)
    assert lines[0] == "  final eval        -90.9 ± 0.0 over 1 episode (min -90.9, max -90.9)"
    assert "over 100 episodes" in verdict_lines("x", 500.0, 0.0, 100, 475.0, 500.0)[0]
    assert [plural(1, "seed"), plural(2, "seed"), plural(1000, "run")] == ["1 seed", "2 seeds", "1,000 runs"]


@pytest.mark.slow
def test_the_progress_bar_ends_full_at_the_solve_and_shows_the_latest_evaluation(workdir: Path) -> None:
    """SB3's bar stops at 8 % when a run solves at 4,000 of 50,000 steps; ours ends at 100 %."""
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    result = subprocess.run(
        [sys.executable, "-m", "cartpole_dqn.train", "--run-name", "bar", "--seed", "0"],
        cwd=workdir,
        env={**env, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    frames = [f for f in result.stderr.replace("\r", "\n").splitlines() if "steps [" in f]
    assert frames, result.stderr
    last = frames[-1]
    import json

    steps = json.loads((workdir / "experiments" / "runs" / "bar" / "results.json").read_text())[
        "steps_to_solve"
    ]
    assert last.startswith(f"solved at {steps:,} 100%"), last
    assert "steps/s incl. evaluations" in last
    import re

    shown = re.search(r"eval mean (-?\d+\.\d)\]", last)
    assert shown is not None and float(shown.group(1)) >= 475.0, last  # the solving evaluation
    assert any("eval mean" in f for f in frames[:-1])  # shown while training, before the solve
