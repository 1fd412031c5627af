"""The benchmark's Markdown table: one row per config, the verdicts next to the figures."""

from __future__ import annotations

from cartpole_dqn.run.stats import Summary


def markdown_table(summaries: dict[str, Summary], baseline: str, threshold: float, budget: int) -> str:
    """One row per config. Steps and wall medians with their IQR are over the seeds that solved;
    when some did not, the steps cell also gives the median over all seeds (unsolved = slower than
    any solve), so a 1-of-2 solve rate never reads like a typical figure. The ratio columns compare
    medians over all seeds, so a config cannot look faster by solving fewer seeds. Ratio columns
    only when there is something to compare."""
    compare = len(summaries) > 1
    ratio_head = (
        f" fewer steps than {baseline} (all seeds) | less wall than {baseline} (all seeds) |"
        if compare
        else ""
    )
    lines = [
        f"| config | solved (≤ budget) | stays solved (≥ {threshold:g}) "
        "| median steps to solve [IQR] (95% CI) | median wall to solve s [IQR] | env steps/s |" + ratio_head,
        "|---|---|---|---|---|---|" + ("---|---|" if compare else ""),
    ]
    for label, s in summaries.items():
        if s.steps_median is None or s.steps_iqr is None or s.wall_median is None or s.wall_iqr is None:
            steps = wall = "-"
        else:
            ci = "" if s.steps_ci95 is None else f" ({s.steps_ci95[0]:,.0f}–{s.steps_ci95[1]:,.0f})"
            steps = f"{s.steps_median:,.0f} [{s.steps_iqr[0]:,.0f}–{s.steps_iqr[1]:,.0f}]{ci}"
            wall = f"{s.wall_median:.1f} [{s.wall_iqr[0]:.1f}–{s.wall_iqr[1]:.1f}]"
        if s.solved < s.runs:
            everyone = s.steps_median_all
            shown = f"unsolved (> {budget:,})" if everyone is None else f"{everyone:,.0f}"
            solved_only = "" if steps == "-" else f"{steps} over the {s.solved} solved; "
            steps = f"{solved_only}all {s.runs} seeds: {shown}"
        ratios = (
            f" {_times(s.steps_ratio_vs_baseline)} | {_times(s.wall_ratio_vs_baseline)} |" if compare else ""
        )
        lines.append(
            f"| {label} | {s.solved}/{s.runs} | {s.stays_solved}/{s.runs} | {steps} | {wall} "
            f"| {s.steps_per_s_median:.0f} |" + ratios
        )
    return "\n".join(lines)


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}×"
