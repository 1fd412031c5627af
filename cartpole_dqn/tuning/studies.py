"""Optuna storage, study and worker bookkeeping for the tuner.

- Storage: an embedded journal file by default (Optuna's ``JournalStorage`` with a file backend,
  safe for several local processes), or an RDB URL (PostgreSQL, MySQL) shared by many machines.
- Exactly N finished trials: a worker claims a trial slot under a lock (a file lock for the
  journal, an advisory lock on PostgreSQL/MySQL), counting finished and running trials, so
  concurrent workers never overshoot the requested total.
- Dead workers: on an RDB, Optuna's heartbeat fails stale trials and
  ``RetryHeartbeatStaleTrialCallback`` re-enqueues them; on the journal, a worker fails the
  RUNNING trials whose owning process (same host, pid and process start time) is gone, and
  re-enqueues their parameters. A live worker's trial is never touched.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from cartpole_dqn.errors import UsageError

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class StoreSettings:
    """Where a study lives: ``url`` None means the embedded journal at ``journal_path``."""

    url: str | None
    journal_path: Path
    heartbeat_interval: int = 10
    grace_period: int = 30

    @property
    def description(self) -> str:
        return str(self.journal_path) if self.url is None else redact(self.url)


def normalized_url(url: str) -> str:
    """``postgres://`` (what many hosting services hand out; SQLAlchemy dropped that alias) and a bare
    ``postgresql://`` (SQLAlchemy 2.1 picks the psycopg 3 driver for it) both mean PostgreSQL through
    the driver this package installs, psycopg2."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def redact(url: str) -> str:
    """The URL with any password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def quiet_experimental_warnings() -> None:
    """Optuna marks the heartbeat and stale-trial API the tuner relies on as experimental and warns on
    every use; users of the tuner cannot act on that, so the tuner's processes do not show them."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def repair_cut_journal(path: Path) -> int:
    """Drop a last line that was cut mid-write (power loss) from a journal file; returns the bytes
    moved aside (into ``<journal>.cut-<time>``). Optuna skips such a line when reading but would glue
    the next record onto it, breaking the journal for good; without it the study is whole again, less
    the one operation that was being written."""
    from optuna.storages.journal import JournalFileOpenLock

    if not path.is_file() or path.stat().st_size == 0:
        return 0
    lock = JournalFileOpenLock(str(path))
    lock.acquire()
    try:
        with open(path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - 1, 0))
            if handle.read(1) == b"\n":
                return 0
            handle.seek(0)
            data = handle.read()
            keep = data.rfind(b"\n") + 1
            aside = path.with_name(f"{path.name}.cut-{time.strftime('%Y%m%d-%H%M%S')}")
            aside.write_bytes(data[keep:])
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
            return size - keep
    finally:
        lock.release()


def open_storage(settings: StoreSettings) -> BaseStorage:
    """The Optuna storage for ``settings``; an unusable URL or file is a :class:`UsageError`."""
    quiet_experimental_warnings()
    if settings.url is None:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = settings.journal_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            cut = repair_cut_journal(path)
            if cut:
                print(
                    f"warning: the study journal {path} ended in a line cut mid-write ({cut} bytes, moved to "
                    f"{path.name}.cut-*): that one operation is lost, the rest of the study is intact",
                    file=sys.stderr,
                )
            backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
            return optuna.storages.JournalStorage(backend)
        except OSError as exc:
            raise UsageError(
                f"cannot use the study journal {path}: {exc.strerror or exc}", about="journal"
            ) from None
        except Exception as exc:
            reason = str(exc).splitlines()[0]
            raise UsageError(f"study journal {path} is unreadable: {reason}", about="journal") from None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(normalized_url(settings.url))
    except (ArgumentError, ValueError):
        raise UsageError(
            f"malformed storage URL '{settings.url}': expected e.g. postgresql+psycopg2://user:pass@host/db",
            about="storage",
        ) from None
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() in ("postgresql", "mysql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        # Two processes creating Optuna's tables at once on a fresh database collide; take turns.
        with ClaimLock(settings, "schema").holding():
            return optuna.storages.RDBStorage(
                normalized_url(settings.url),
                engine_kwargs=engine_kwargs,
                heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
    except Exception as exc:
        reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"cannot use storage {redact(settings.url)}: {reason}", about="storage") from None


def open_study(
    storage: BaseStorage,
    name: str,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Load or create the (maximize) study; one of another direction is refused, untouched."""
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        return optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction="maximize",
            load_if_exists=True,
        )
    if study.directions != [optuna.study.StudyDirection.MAXIMIZE]:
        directions = ", ".join(d.name.lower() for d in study.directions)
        raise UsageError(
            f"study '{name}' already exists with direction {directions}; the tuner maximizes: "
            "choose another study name",
            about="study_name",
        )
    return study


def count(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return len(trials) - running, running


# --- worker identity and orphans (embedded store) ---


def _process_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"worker_host": socket.gethostname(), "worker_pid": pid, "worker_start": _process_start(pid)}


def _alive(attrs: dict[str, Any]) -> bool:
    pid = attrs.get("worker_pid")
    if not isinstance(pid, int):
        return False
    start = _process_start(pid)
    if start is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return attrs.get("worker_start") is None
    return start == attrs.get("worker_start")


def fail_orphans(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials of dead local workers and re-enqueue their params; call under the claim lock.

    Under the lock no trial is between creation and identification, so a RUNNING trial with no
    worker identity was orphaned in that window too.
    """
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("worker_host", host) != host or ("worker_pid" in attrs and _alive(attrs)):
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        failed.append(trial.number)
    return failed


# --- the claim lock ---


class ClaimLock:
    """Serializes "count trials, then start one" across workers of one study."""

    def __init__(self, settings: StoreSettings, study_name: str) -> None:
        self.settings = settings
        self.study_name = study_name
        self.held = False
        self._release: Any = None

    def acquire(self) -> None:
        url = None if self.settings.url is None else normalized_url(self.settings.url)
        backend = None
        if url is not None:
            from sqlalchemy.engine import make_url

            backend = make_url(url).get_backend_name()
        if url is None or backend == "sqlite":
            path = self.settings.journal_path if url is None else Path(str(make_url(url).database))
            handle = open(f"{path}.claim.lock", "a+")  # noqa: SIM115 - held until release()
            fcntl.flock(handle, fcntl.LOCK_EX)

            def release() -> None:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()

            self._release = release
        elif backend in ("postgresql", "mysql"):
            import sqlalchemy as sa

            connect_args = {"connect_timeout": 10}
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args)
            connection = engine.connect()
            key = zlib.crc32(f"cartpole_dqn:{self.study_name}".encode())
            if backend == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                unlock = sa.text("SELECT pg_advisory_unlock(:k)")
            else:
                connection.execute(sa.text("SELECT GET_LOCK(:k, -1)"), {"k": str(key)})
                unlock = sa.text("SELECT RELEASE_LOCK(:k)")

            def release() -> None:
                connection.execute(unlock, {"k": key if backend == "postgresql" else str(key)})
                connection.close()
                engine.dispose()

            self._release = release
        else:  # another RDB: no cross-worker lock; the total may overshoot by up to workers - 1
            self._release = lambda: None
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._release()

    @contextmanager
    def holding(self) -> Iterator[ClaimLock]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()
