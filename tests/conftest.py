"""Shared test helpers: run the real CLIs as subprocesses and inspect exit status and stderr."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_module(module: str, *args: str, cwd: Path, timeout: float = 600) -> CliResult:
    """``python -m <module> <args>`` in ``cwd`` with a clean, quiet environment."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_in_process(module: str, *args: str, cwd: Path) -> CliResult:
    """``python -m <module> <args>`` run in this process: the CLI's own ``cli(argv)`` with its output
    captured. For commands that answer at once (bad input, --help): the same entry point without a
    new interpreter's ~2 s of imports per call."""
    import contextlib
    import importlib
    import io

    cli = importlib.import_module(module).cli
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli(list(args))
            except SystemExit as exit_:  # argparse's own errors and --help
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.chdir(previous)
    return CliResult(code, out.getvalue(), err.getvalue())


def never_stopping_base(folder: Path) -> Path:
    """A base config whose trials run their whole budget (no early stop once solved): a sweep to
    be killed mid-trial must not finish its trial between being seen RUNNING and the kill (the
    default solves CartPole in ~2 s)."""
    path = folder / "never-stopping.yaml"
    path.write_text("early_stop: false\n")
    return path


T = TypeVar("T")


def sigkill_when(module: str, args: list[str], cwd: Path, ready: Callable[[], T | None], settle: float) -> T:
    """Start ``python -m module args``; once ``ready()`` returns something, wait ``settle`` seconds
    (so the process is mid-work), SIGKILL it, and return what ``ready()`` returned."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        found = None
        while found is None and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            found = ready()
        assert found is not None, f"{module} never reached the state to kill it in"
        time.sleep(settle)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        return found
    finally:
        if process.poll() is None:
            process.kill()


def assert_one_line_error(result: CliResult, *needles: str, status: int = 2) -> None:
    """Exit ``status``, exactly one non-empty stderr line containing every needle, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def tree_digest(root: Path) -> dict[str, str]:
    """Path -> sha256 of every file below ``root`` (to prove that nothing was changed)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working folder that holds a copy of experiments/configs, as a user's checkout would."""
    configs = tmp_path / "experiments" / "configs"
    configs.mkdir(parents=True)
    for f in (REPO / "experiments" / "configs").glob("*.yaml"):
        (configs / f.name).write_text(f.read_text())
    return tmp_path


def flushing_denormals(train: Any) -> Any:
    """A stock SB3 update under the float setting our agents' fast updates use (denormals flushed)."""
    from cartpole_dqn.dqn.fast.denormals import flushed_denormals

    def run(*args: Any, **kwargs: Any) -> Any:
        with flushed_denormals():
            return train(*args, **kwargs)

    return run


def assert_tracks_within_rounding(stock: Any, ours: Any) -> None:
    """Two agents trained alike, one on another Adam kernel: parameters within 1e-4 relative and
    the same greedy actions on 1,000 CartPole-shaped states."""
    import numpy as np
    import torch as th

    for a, b in zip(stock.policy.parameters(), ours.policy.parameters(), strict=True):
        th.testing.assert_close(b.detach(), a.detach(), rtol=1e-4, atol=1e-6)
    probes = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        ours.predict(probes, deterministic=True)[0], stock.predict(probes, deterministic=True)[0]
    )
