"""A benchmark's record: the JSON of every run, the Markdown table with the paired differences,
and the plots, side by side."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cartpole_dqn.run.verdict import plural


def write_record(record: dict[str, Any], stem: Path, threshold: float, max_return: float | None) -> None:
    """The benchmark's JSON (every run), its Markdown table and its plots, next to each other."""
    from cartpole_dqn.benchmarking.plots import write_plots
    from cartpole_dqn.benchmarking.tables import markdown_table

    summaries, by_label = record["summaries"], record["runs"]
    serializable = {
        **record,
        "summaries": {label: asdict(s) for label, s in summaries.items()},
        "paired": {label: None if d is None else asdict(d) for label, d in record["paired"].items()},
        "runs": [{"label": label, **r.to_dict()} for label, runs in by_label.items() for r in runs],
    }
    stem.with_suffix(".json").write_text(json.dumps(serializable, indent=1) + "\n")
    eval_freqs = {
        label: config["eval_freq"] or config["total_timesteps"] for label, config in record["configs"].items()
    }
    plots = write_plots(by_label, eval_freqs, record["budget"], threshold, max_return, stem)
    table = (
        markdown_table(summaries, record["baseline"], threshold, record["budget"])
        + paired_lines(record["paired"], record["baseline"])
        + diverged_lines(by_label)
    )
    seeds = record["seeds"]
    markdown = (
        f"# Benchmark: {record['env_id']}, {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), "
        f"budget {record['budget']:,} steps\n\n"
        f"Command: `{record['command']}`  \nMachine: {record['machine']}; {record['jobs']} runs in parallel, "
        f"one torch thread each. Solved = first 100-episode greedy evaluation ≥ {threshold:g}"
        + (f" (maximum {max_return:g})" if max_return is not None else "")
        + " at a step within the budget; unsolved seeds count as not solved, never dropped.\n\n"
        + table
        + "\n\n"
        + "".join(f"![{p.stem}]({p.name})\n" for p in plots)
    )
    stem.with_suffix(".md").write_text(markdown)
    print(table)
    print(f"results: {stem.with_suffix('.json')}, {stem.with_suffix('.md')}, " + ", ".join(map(str, plots)))


def paired_lines(paired: dict[str, Any], baseline: str) -> str:
    """One line per config: its paired difference in steps to solve against the baseline."""
    lines = [
        f"\n{label} vs {baseline}, paired by seed ({plural(len(d.seeds), 'seed')}; "
        f"{baseline} − {label} steps to "
        f"solve, unsolved = budget): median {d.median:+,.0f}, 95% bootstrap CI [{d.ci95[0]:+,.0f}, "
        f"{d.ci95[1]:+,.0f}]; fewer steps on {plural(d.config_better, 'seed')}, more on {d.baseline_better}"
        for label, d in paired.items()
        if d is not None
    ]
    return ("\n" if lines else "") + "\n".join(lines)


def diverged_lines(by_label: dict[str, Any]) -> str:
    """One line per run that diverged, naming it (it counts as unsolved everywhere above)."""
    lines = [
        f"\n{label} seed {r.seed} diverged (counted as unsolved): {r.diverged}"
        for label, runs in by_label.items()
        for r in runs
        if r.diverged is not None
    ]
    return ("\n" if lines else "") + "\n".join(lines)
