"""Human-readable verdicts: scores next to the threshold and the maximum, as every report must show."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cartpole_dqn.run.results import RunResult


def plural(n: int, word: str, bare: bool = False) -> str:
    """``1 seed``, ``2 seeds``, ``1,000 episodes`` (``bare``: the word alone)."""
    text = word if n == 1 else f"{word}s"
    return text if bare else f"{n:,} {text}"


def verdict_lines(
    label: str,
    mean: float,
    std: float,
    episodes: int,
    threshold: float,
    max_return: float | None,
    lo: float | None = None,
    hi: float | None = None,
) -> list[str]:
    """Lines comparing a mean return with the solve threshold and (if known) the maximum return."""
    spread = f" (min {lo:.1f}, max {hi:.1f})" if lo is not None and hi is not None else ""
    lines = [f"  {label:<18}{mean:.1f} ± {std:.1f} over {plural(episodes, 'episode')}{spread}"]
    status = "PASS" if mean >= threshold else "FAIL"
    lines.append(f"  {'vs threshold':<18}{status}: {mean:.1f} vs {threshold:g} ({mean - threshold:+.1f})")
    if max_return is not None:
        lines.append(f"  {'vs maximum':<18}{mean:.1f} of {max_return:g} ({100 * mean / max_return:.1f}%)")
    return lines


def training_verdict(result: RunResult) -> str:
    """The short table printed at the end of ``train``."""
    head = f"{result.env_id} · seed {result.seed} · {result.total_steps:,} env steps"
    if result.solved:
        assert result.steps_to_solve is not None and result.wall_to_solve_s is not None
        solved = (
            f"yes, at {result.steps_to_solve:,} env steps (budget {result.budget:,}), "
            f"{result.wall_to_solve_s:.2f} s wall"
        )
    else:
        solved = f"no, not within the budget of {result.budget:,} env steps"
    lines = [head, f"  {'solved':<18}{solved}"]
    lines += verdict_lines(
        "saved model",
        result.eval_mean,
        result.eval_std,
        result.eval_episodes,
        result.threshold,
        result.max_return,
        result.eval_min,
        result.eval_max,
    )
    stays = "yes" if result.stays_solved else "no"
    lines.append(f"  {'stays solved':<18}{stays} (fresh eval seeds {result.final_eval_seed}+)")
    lines.append(f"  {'throughput':<18}{result.steps_per_s:.0f} env steps/s (training, evals excluded)")
    lines.append(f"  {'artifacts':<18}{result.run_dir}")
    return "\n".join(lines)
