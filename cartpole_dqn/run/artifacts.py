"""Run folders and file writes that never lose or overwrite earlier results."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cartpole_dqn.errors import UsageError, write_error

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# The files of a run folder.
CHECKPOINT = "checkpoint"  # the folder of the latest resumable checkpoint
BEST_MODEL = "best_model.zip"  # inside a checkpoint: the best model as of that checkpoint
MODEL = "model.zip"  # the best checkpoint (what evaluate and export read)
FINAL_MODEL = "final_model.zip"  # the weights when training stopped
CONFIG = "config.yaml"
RESULTS = "results.json"
# The files of a checkpoint folder.
CHECKPOINT_MODEL = "model.zip"  # the model as of the checkpoint (SB3 format)
CHECKPOINT_BUFFER = "replay_buffer.pkl"  # its replay buffer (SB3's save_replay_buffer)
CHECKPOINT_STATE = "state.json"  # step, evaluations, wall clock, RNG states; written last


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run (the previous one if a swap was interrupted)."""
    for candidate in (run_dir / CHECKPOINT, run_dir / f"{CHECKPOINT}.old"):
        if (candidate / CHECKPOINT_STATE).is_file():
            return candidate
    return None


@dataclass(frozen=True)
class RunPaths:
    """Where one run writes: its artifact folder and its TensorBoard folder."""

    name: str
    run_dir: Path
    tensorboard_dir: Path

    @property
    def model(self) -> Path:
        return self.run_dir / MODEL

    @property
    def config(self) -> Path:
        return self.run_dir / CONFIG

    @property
    def results(self) -> Path:
        return self.run_dir / RESULTS


def default_run_name(env_id: str, seed: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", env_id).strip("-")
    return f"{slug}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def allocate_run(runs_root: Path, log_root: Path, run_name: str | None, default_name: str) -> RunPaths:
    """Create ``<runs_root>/<name>`` and reserve ``<log_root>/<name>`` for a new run.

    An explicit ``run_name`` that is already taken is refused; a default name gets a numeric suffix.
    """
    if run_name is not None and not _RUN_NAME.match(run_name):
        raise UsageError(
            f"invalid run name {run_name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
            about="run_name",
        )
    for directory, about in ((runs_root, "runs_root"), (log_root, "log_root")):
        ensure_writable_dir(directory, about)
    candidates = (
        [run_name]
        if run_name is not None
        else [default_name] + [f"{default_name}-{i}" for i in range(2, 1000)]
    )
    for name in candidates:
        run_dir, tb_dir = runs_root / name, log_root / name
        if tb_dir.exists():
            continue
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(
                f"cannot create run folder {run_dir}: {exc.strerror}", about="runs_root"
            ) from None
        lock_run(run_dir)
        return RunPaths(name, run_dir, tb_dir)
    if run_name is not None:
        raise UsageError(
            f"run name '{run_name}' is already used in {runs_root} or {log_root}; choose another",
            about="run_name",
        )
    raise UsageError(f"could not find a free run name starting with '{default_name}'")  # pragma: no cover


RUN_LOCK = ".lock"
_held: dict[Path, Any] = {}  # run folder -> its open lock file, held while this process trains it


def lock_run(run_dir: Path) -> None:
    """Hold ``<run>/.lock`` (an exclusive ``flock``) until :func:`release_run` or this process ends, so
    that no second process trains, resumes or continues the same run at the same time."""
    key = run_dir.resolve()
    if key in _held:
        return
    try:
        (run_dir / RUN_LOCK).touch()
        # read-only: a lock held open for writing would keep the folder's file system from being remounted
        handle = open(run_dir / RUN_LOCK)  # noqa: SIM115 - held until release_run or exit
    except OSError as exc:
        raise UsageError(f"cannot use run folder {run_dir}: {exc.strerror}", about="run_dir") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UsageError(
            f"run folder {run_dir} is in use by another process (training, resuming or continuing it); "
            "wait for it to finish",
            about="run_dir",
        ) from None
    _held[key] = handle


@atexit.register
def release_held_runs() -> None:
    """Release every run this process holds: a command that stops with an error (a corrupt
    checkpoint, say) leaves no ``.lock`` behind."""
    for run_dir in list(_held):
        release_run(run_dir)


def release_run(run_dir: Path) -> None:
    """Give up the run's lock and remove its ``.lock`` file (while still holding it, so no process
    that waits on it finds it half gone), leaving a finished run folder without it."""
    handle = _held.pop(run_dir.resolve(), None)
    if handle is not None:
        with contextlib.suppress(OSError):  # a read-only or vanished folder keeps its lock file
            (run_dir / RUN_LOCK).unlink(missing_ok=True)
        handle.close()


def ensure_writable_dir(directory: Path, about: str) -> None:
    """Create ``directory`` if needed; refuse one that is a file or not writable."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a folder", about=about)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create folder {directory}: {exc.strerror}", about=about) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"folder {directory} is not writable", about=about)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename, so a crash never leaves half a file."""
    try:
        _write_atomic(path, text)
    except OSError as exc:
        raise write_error(str(path), exc, "the file that was there is intact") from None


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; artifacts get ordinary permissions
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        discard(Path(tmp))
        raise


def discard(path: Path) -> None:
    """Remove a temp file if the folder still allows it: on a folder turned read-only even the
    unlink fails (EROFS), and that must not hide the error that matters."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")
