"""The benchmark's Markdown table: one row per config, the verdicts next to the figures."""

from __future__ import annotations

from cartpole_dqn.benchmarking.stats import Summary


def markdown_table(summaries: dict[str, Summary], baseline: str, threshold: float) -> str:
    lines = [
        f"| config | solved (≤ budget) | stays solved (≥ {threshold:g}) "
        "| median steps to solve [IQR] (95% CI) | median wall to solve s [IQR] | env steps/s "
        f"| fewer steps than {baseline} | less wall than {baseline} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, s in summaries.items():
        if s.steps_median is None or s.steps_iqr is None or s.wall_median is None or s.wall_iqr is None:
            steps = wall = "-"
        else:
            ci = "" if s.steps_ci95 is None else f" ({s.steps_ci95[0]:,.0f}–{s.steps_ci95[1]:,.0f})"
            steps = f"{s.steps_median:,.0f} [{s.steps_iqr[0]:,.0f}–{s.steps_iqr[1]:,.0f}]{ci}"
            wall = f"{s.wall_median:.1f} [{s.wall_iqr[0]:.1f}–{s.wall_iqr[1]:.1f}]"
        lines.append(
            f"| {label} | {s.solved}/{s.runs} | {s.stays_solved}/{s.runs} | {steps} | {wall} "
            f"| {s.steps_per_s_median:.0f} | {_times(s.steps_ratio_vs_baseline)} "
            f"| {_times(s.wall_ratio_vs_baseline)} |"
        )
    return "\n".join(lines)


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}×"
