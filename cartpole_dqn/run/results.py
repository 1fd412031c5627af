"""What one training run produced, typed: ``results.json`` is its serialization."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cartpole_dqn.run.solve import EvalRecord


@dataclass(frozen=True)
class RunResult:
    """The verdict, the figures and the artifacts of one run (see the README's solve definition)."""

    env_id: str
    seed: int
    threshold: float
    max_return: float | None  # the most an episode can return, where known (CartPole: its step limit)
    budget: int  # training env steps allowed; "solved" means solved at a step within it
    solved: bool
    steps_to_solve: int | None
    wall_to_solve_s: float | None
    total_steps: int
    setup_s: float  # process set-up before learn() (imports, building the agent); 0 for a resume
    train_wall_s: float  # learn() wall clock, evaluations included
    resumed: bool
    eval_time_s: float
    steps_per_s: float  # training throughput, evaluation time excluded
    best_step: int | None  # the evaluation whose model is model_path
    eval_mean: float  # the saved model re-evaluated on fresh seeds ...
    eval_std: float
    eval_min: float
    eval_max: float
    eval_episodes: int
    final_eval_seed: int  # ... starting at this seed
    stays_solved: bool  # solved, and the re-evaluation still reaches the threshold
    run_name: str
    run_dir: str
    model_path: str
    config_path: str
    tensorboard_dir: str
    evaluations: list[EvalRecord] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    # Set when training diverged (non-finite loss or Q): the run then counts as unsolved, and the
    # eval_* fields score the best model saved before it (eval_episodes 0: none was saved yet).
    diverged: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Read a results mapping (keys this class does not know, e.g. from later versions, are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["evaluations"] = [EvalRecord(**r) for r in data.get("evaluations", [])]
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> RunResult:
        """A run's results file; an unreadable or malformed one is a one-line :class:`UsageError`."""
        from cartpole_dqn.errors import UsageError, reason_of

        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, got {type(data).__name__}")
            return cls.from_dict(data)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            reason = reason_of(exc)
            raise UsageError(f"results file {path} is unreadable: {reason}", about="run_dir") from None
