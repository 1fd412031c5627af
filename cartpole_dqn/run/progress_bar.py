"""The training progress bar: SB3's ``progress_bar=True`` (tqdm), made to tell the protocol's story.

SB3's bar counts toward the budget and stops where training stops, so a run that solves at 4,000
of 50,000 steps ends at 8 %. This one ends full, saying ``solved at 4,000``; shows the latest
evaluation's mean return as it goes (without ``--verbose``); and labels its rate as what it is,
env steps per second of wall clock with the evaluations included.
"""

from __future__ import annotations

from typing import IO, Any

from stable_baselines3.common.callbacks import BaseCallback

from cartpole_dqn.run.solve import SolveCallback

BAR_FORMAT = (
    "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps "
    "[{elapsed}<{remaining}, {rate_fmt} incl. evaluations{postfix}]"
)


class TrainingProgressBar(BaseCallback):
    """A tqdm bar over the training steps that reads the solve protocol's state.

    :param solve: the run's solve callback (its evaluations and verdict)
    :param file: where the bar is drawn (tqdm's default: stderr)
    """

    def __init__(self, solve: SolveCallback, file: IO[str] | None = None) -> None:
        super().__init__()
        self.solve = solve
        self.file = file
        self.bar: Any = None
        self._evaluations_shown = 0

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        total = int(self.locals["total_timesteps"]) - self.model.num_timesteps
        self.bar = tqdm(total=total, unit=" steps", bar_format=BAR_FORMAT, file=self.file, dynamic_ncols=True)
        self._evaluations_shown = len(self.solve.state.history)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        history = self.solve.state.history
        if len(history) > self._evaluations_shown:
            self._evaluations_shown = len(history)
            self.bar.set_postfix_str(f"eval mean {history[-1].mean:.1f}", refresh=False)
        return True

    def _on_training_end(self) -> None:
        state = self.solve.state
        if state.solved and state.steps_to_solve is not None and self.bar.n < self.bar.total:
            self.bar.set_description_str(f"solved at {state.steps_to_solve:,} ", refresh=False)
            self.bar.total = self.bar.n  # an early stop is the end of this run, not 8 % of it
        self.bar.refresh()
        self.bar.close()
