"""Periodic checkpoints of a training run, and reading them back to resume after a crash.

A checkpoint is a folder ``<run>/checkpoint/`` with the model (SB3 zip), the replay buffer, the
best model saved so far, and ``state.json`` (step counter, the solve callback's state, elapsed wall
time, TensorBoard folder, RNG states). It is taken at a rollout boundary, when every transition
counted so far is stored and trained on, and written into a temporary folder first and swapped in
by renames, so a kill at any moment leaves either the previous checkpoint or the new one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from cartpole_dqn.dqn.buffers import WindowedReplayBuffer
from cartpole_dqn.errors import UsageError, write_error
from cartpole_dqn.run.artifacts import (
    BEST_MODEL,
    CHECKPOINT,
    CHECKPOINT_BUFFER,
    CHECKPOINT_MODEL,
    CHECKPOINT_STATE,
    checkpoint_dir,
    latest_checkpoint,
)
from cartpole_dqn.run.solve import EvalRecord, SolveCallback, SolveState


class RunCheckpointCallback(BaseCallback):
    """Every ``every`` env steps (at the next rollout start), atomically replace ``<run>/checkpoint/``.

    A child of the run's :class:`~cartpole_dqn.run.solve.SolveCallback` (its ``checkpoint``), whose
    state, schedule, clock and best model it saves with the model and the replay buffer. At a
    rollout start SB3 has stored the last step's transition and run the training phase that follows
    it, so a resume from here continues exactly where ``learn()``'s loop stood.

    :param run_dir: the run folder
    :param every: env steps between checkpoints
    :param tensorboard_dir: recorded so that a resume keeps writing to the same TensorBoard run
    """

    def __init__(self, run_dir: Path, every: int, tensorboard_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.every = every
        self.tensorboard_dir = tensorboard_dir
        self._next = every

    @property
    def solve(self) -> SolveCallback:
        assert isinstance(self.parent, SolveCallback), "a RunCheckpointCallback is a SolveCallback's child"
        return self.parent

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.every + 1) * self.every if self.every > 0 else 0

    def _on_rollout_start(self) -> None:
        self.num_timesteps = self.model.num_timesteps
        if self.every > 0 and self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.every + 1) * self.every
            self.save()

    def _on_step(self) -> bool:
        return True

    def save_at(self, step: int) -> None:
        """Checkpoint now, as of ``step`` (a Ctrl-C between an env step and its storage: the step
        just taken is not in the buffer yet, so the count is rolled back to what the buffer holds)."""
        counted = self.model.num_timesteps
        self.model.num_timesteps = step
        self.num_timesteps = step
        try:
            self.save()
        finally:
            self.model.num_timesteps = counted

    def save(self) -> None:
        """Write the checkpoint; on a full disk or a read-only folder, a :class:`WriteError` (the
        previous checkpoint is kept: the new one is only swapped in once it is complete)."""
        tmp = self.run_dir / f".{CHECKPOINT}.tmp"
        try:
            self._write(tmp)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            kept = (
                "the previous checkpoint is intact"
                if latest_checkpoint(self.run_dir)
                else "no checkpoint yet"
            )
            raise write_error(f"a checkpoint in {self.run_dir}", exc, kept) from None

    def _write(self, tmp: Path) -> None:
        final = checkpoint_dir(self.run_dir)
        old = self.run_dir / f"{CHECKPOINT}.old"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        model = cast(OffPolicyAlgorithm, self.model)
        model.save(tmp / CHECKPOINT_MODEL)
        model.save_replay_buffer(tmp / CHECKPOINT_BUFFER)
        best = self.solve.best_model_path
        if best is not None and best.is_file():  # the model the saved history's best_step describes
            shutil.copyfile(best, tmp / BEST_MODEL)
        state = {
            "num_timesteps": int(self.num_timesteps),
            "elapsed_s": self.solve.elapsed(),
            "next_eval": self.solve.next_eval,
            "solve": asdict(self.solve.state),
            "tensorboard_dir": str(self.tensorboard_dir.resolve()),
            "implementation": type(self.model).__name__,
            "rng": rng_state(self.model),
        }
        (tmp / CHECKPOINT_STATE).write_text(json.dumps(state) + "\n")
        for path in tmp.iterdir():  # make the files durable before they become the checkpoint
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)


def restore_best_model(checkpoint: Path, model_path: Path) -> None:
    """Put the checkpoint's best model back in place: a killed session may have saved a newer one
    after the checkpoint, which the checkpointed history does not describe."""
    saved = checkpoint / BEST_MODEL
    if not saved.is_file():  # checkpoints written before the best model was part of them
        return
    tmp = model_path.with_name(f".{model_path.name}.restore.tmp")
    shutil.copyfile(saved, tmp)
    os.replace(tmp, model_path)


def end_episodes_at_the_seam(buffer: ReplayBuffer) -> None:
    """End the episodes of the last stored row, as the resumed envs start new ones there.

    Marked as truncations (``timeouts``), not terminations: the stored next observations are real,
    so one-step targets still bootstrap from them, while n-step windows stop at the seam instead of
    running into the next episode. Rows that already ended an episode are left as they are.
    """
    if buffer.size() == 0:
        return
    last = (buffer.pos - 1) % buffer.buffer_size
    buffer.timeouts[last] = np.maximum(buffer.timeouts[last], 1.0 - buffer.dones[last])
    if isinstance(buffer, WindowedReplayBuffer):
        buffer.recompute_windows()  # the windows growing into the seam end there


def rng_state(model: Any) -> dict[str, Any]:
    """The random streams a run draws from (numpy, torch, Python, the action space), JSON-ready.

    SB3 reseeds all of them from the seed when a model is loaded; restoring these afterwards makes
    a resumed run continue its streams instead of replaying them from the start.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss = random.getstate()
    return {
        "numpy": [kind, np.asarray(keys).tolist(), pos, has_gauss, cached],
        "torch": th.get_rng_state().tolist(),
        "python": [version, list(internal), gauss],
        "action_space": model.action_space.np_random.bit_generator.state,
    }


def restore_rng_state(model: Any, state: dict[str, Any]) -> None:
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    th.set_rng_state(th.tensor(state["torch"], dtype=th.uint8))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    model.action_space.np_random.bit_generator.state = state["action_space"]


@dataclass(frozen=True)
class CheckpointState:
    """``state.json`` of a checkpoint: where the run stood when it was taken."""

    num_timesteps: int
    elapsed_s: float  # the wall-to-solve clock
    next_eval: int
    solve: SolveState
    tensorboard_dir: Path
    rng: dict[str, Any]


def read_state(checkpoint: Path) -> CheckpointState:
    """Read a checkpoint's state.json (also those of 0.1.0, whose solve state had more keys)."""
    try:
        state: dict[str, Any] = json.loads((checkpoint / CHECKPOINT_STATE).read_text())
        solve = state["solve"]
        return CheckpointState(
            num_timesteps=int(state["num_timesteps"]),
            elapsed_s=float(state["elapsed_s"]),
            next_eval=int(state["next_eval"]),
            solve=SolveState(
                solved=solve["solved"],
                steps_to_solve=solve["steps_to_solve"],
                wall_to_solve_s=solve["wall_to_solve_s"],
                eval_time_s=solve["eval_time_s"],
                history=[EvalRecord(**r) for r in solve["history"]],
            ),
            tensorboard_dir=Path(state["tensorboard_dir"]),
            rng=state["rng"],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"checkpoint {checkpoint} is unreadable: {exc}", about="run_dir") from None
