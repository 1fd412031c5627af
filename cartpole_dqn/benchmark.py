"""``python -m cartpole_dqn.benchmark``: many seeds per config, side by side with the SB3 baseline.

Every (config, seed) pair is an ordinary training run (the same factory and solve callback as
``train``), run in parallel worker processes with one torch thread each. The baseline runs in the
same invocation, so the ratios are meaningful on a noisy machine. Writes a JSON file with every
run, a Markdown table and PNG plots to ``--output-dir``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cartpole_dqn.cli import OneLineParser, run_cli
from cartpole_dqn.config import RunConfig, load_config
from cartpole_dqn.errors import UsageError

PROG = "python -m cartpole_dqn.benchmark"
CONFIG_DIRS = (Path("experiments/configs"), Path(__file__).resolve().parents[1] / "experiments" / "configs")
DEFAULT_SEED_START = 1000  # tuning trains on 10,000+, its validation on 900,000+; the ablation used 100-209


def resolve_config(name: str) -> Path:
    """A config name (``default`` -> experiments/configs/default.yaml) or a path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise UsageError(f"config file not found: {name}")
        return candidate
    for folder in CONFIG_DIRS:
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for folder in CONFIG_DIRS if folder.is_dir() for p in folder.glob("*.yaml")})
    raise UsageError(f"unknown config '{name}': give a path or one of {', '.join(known)}")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description="Multi-seed benchmark of run configs.")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["default", "sb3_zoo_baseline"],
        help="config names (experiments/configs/NAME.yaml) or paths",
    )
    parser.add_argument(
        "--baseline", default=None, help="config the ratios are against (default: the last one)"
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds per config (10)")
    parser.add_argument("--seed-start", type=int, default=DEFAULT_SEED_START, help="first seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel runs (CPU cores)")
    parser.add_argument(
        "--timesteps", type=int, default=None, help="budget for every config (default 50,000)"
    )
    parser.add_argument("--env", default=None, help="env id for every config (threshold from its spec)")
    parser.add_argument("--output-dir", type=Path, default=Path("experiments/results"), help="results folder")
    parser.add_argument("--runs-dir", type=Path, default=Path("experiments/runs"), help="run artifacts root")
    parser.add_argument("--log-dir", type=Path, default=Path("tensorboard_logs"), help="TensorBoard root")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples for the median CI")
    return parser


def load_configs(args: Any) -> dict[str, RunConfig]:
    configs: dict[str, RunConfig] = {}
    for name in args.configs:
        path = resolve_config(name)
        overrides: dict[str, Any] = {"total_timesteps": args.timesteps or 50_000}
        if args.env is not None:
            overrides.update(env_id=args.env, threshold=None)
        label = path.stem if name == path.stem or name.endswith((".yaml", ".yml")) else name
        if label in configs:
            raise UsageError(f"config '{label}' is listed twice")
        configs[label] = load_config(path, overrides)
    return configs


def summarize_all(
    runs: list[dict[str, Any]], labels: list[str], baseline: str, budget: int, resamples: int
) -> dict[str, dict[str, Any]]:
    from cartpole_dqn.multiseed import bootstrap_median_ci, solved_within, summarize

    rng = np.random.default_rng(0)
    out = {}
    for label in labels:
        mine = [r for r in runs if r["label"] == label]
        s = summarize(mine, budget=budget)
        steps = [float(r["steps_to_solve"]) for r in mine if solved_within(r, budget)]
        s["steps_ci95"] = bootstrap_median_ci(steps, rng, resamples) if steps else None
        out[label] = s
    base = out[baseline]
    for s in out.values():
        s["steps_ratio_vs_baseline"] = _ratio(base["steps_median"], s["steps_median"])
        s["wall_ratio_vs_baseline"] = _ratio(base["wall_median"], s["wall_median"])
    return out


def _ratio(baseline: float | None, value: float | None) -> float | None:
    return None if baseline is None or not value else baseline / value


def markdown_table(summaries: dict[str, dict[str, Any]], baseline: str, threshold: float) -> str:
    lines = [
        f"| config | solved (≤ budget) | stays solved (≥ {threshold:g}) "
        "| median steps to solve [IQR] (95% CI) | median wall to solve s [IQR] | env steps/s "
        f"| fewer steps than {baseline} | less wall than {baseline} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, s in summaries.items():
        if s["steps_median"] is None:
            steps = wall = "-"
        else:
            ci = s["steps_ci95"]
            steps = (
                f"{s['steps_median']:,.0f} [{s['steps_iqr'][0]:,.0f}–{s['steps_iqr'][1]:,.0f}] "
                f"({ci[0]:,.0f}–{ci[1]:,.0f})"
            )
            wall = f"{s['wall_median']:.1f} [{s['wall_iqr'][0]:.1f}–{s['wall_iqr'][1]:.1f}]"
        ratio = lambda r: "-" if r is None else f"{r:.1f}×"  # noqa: E731
        lines.append(
            f"| {label} | {s['solved']}/{s['runs']} | {s['stays_solved']}/{s['runs']} | {steps} | {wall} "
            f"| {s['steps_per_s_median']:.0f} | {ratio(s['steps_ratio_vs_baseline'])} "
            f"| {ratio(s['wall_ratio_vs_baseline'])} |"
        )
    return "\n".join(lines)


def curve_grid(runs: list[dict[str, Any]], eval_freq: int, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Eval means on a common step grid, one row per run; a run that stopped holds its last value."""
    grid = np.arange(eval_freq, budget + 1, eval_freq)
    rows = []
    for run in runs:
        steps = np.array([e["step"] for e in run["evaluations"]], dtype=float)
        means = np.array([e["mean"] for e in run["evaluations"]], dtype=float)
        index = np.searchsorted(steps, grid, side="right") - 1
        rows.append(np.where(index >= 0, means[np.clip(index, 0, None)], np.nan))
    return grid, np.array(rows)


def write_plots(
    runs: list[dict[str, Any]],
    labels: list[str],
    configs: dict[str, RunConfig],
    threshold: float,
    max_return: float | None,
    stem: Path,
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cartpole_dqn.multiseed import solved_within

    paths = []
    budget = max(c.total_timesteps for c in configs.values())
    fig, ax = plt.subplots(figsize=(9, 5))
    last_step = 0
    for label in labels:
        mine = [r for r in runs if r["label"] == label]
        grid, values = curve_grid(mine, configs[label].eval_freq, budget)
        if not len(values):
            continue
        reached = grid <= max(r["total_steps"] for r in mine)
        last_step = max(last_step, int(grid[reached][-1]) if reached.any() else 0)
        median = np.nanmedian(values, axis=0)
        q25, q75 = np.nanpercentile(values, [25, 75], axis=0)
        line = ax.plot(grid[reached], median[reached], label=f"{label} (median of {len(mine)} seeds)")[0]
        ax.fill_between(grid[reached], q25[reached], q75[reached], alpha=0.2, color=line.get_color())
    ax.axhline(threshold, ls="--", color="k", lw=1, label=f"threshold {threshold:g}")
    if max_return is not None:
        ax.axhline(max_return, ls="--", color="gray", lw=1, label=f"maximum {max_return:g}")
    ax.set_xlabel("training env steps")
    ax.set_ylabel("greedy eval mean return (100 episodes; first 10 if stopped early)")
    ax.set_title(
        f"{runs[0]['env_id']}: eval return vs steps (band: IQR over seeds; solved runs hold their value)"
    )
    ax.set_xlim(0, max(last_step, 1))
    ax.legend(loc="lower right", fontsize=8)
    paths.append(stem.with_name(stem.name + "-curves.png"))
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    data = [
        [r["steps_to_solve"] if solved_within(r, budget) else np.nan for r in runs if r["label"] == label]
        for label in labels
    ]
    ax.boxplot(
        [[x for x in d if not np.isnan(x)] or [np.nan] for d in data], tick_labels=labels, showfliers=False
    )
    rng = np.random.default_rng(0)
    for i, config_steps in enumerate(data, start=1):
        solved = [x for x in config_steps if not np.isnan(x)]
        jitter = i + rng.uniform(-0.12, 0.12, len(solved))
        ax.scatter(jitter, solved, s=14, alpha=0.7, zorder=3)
        unsolved = len(config_steps) - len(solved)
        if unsolved:
            ax.annotate(f"{unsolved} unsolved", (i, budget), ha="center", fontsize=8)
    ax.set_ylabel("env steps to solve")
    ax.set_title("steps to solve per config (each dot a seed)")
    paths.append(stem.with_name(stem.name + "-steps.png"))
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag, value, low in (
        ("--seeds", args.seeds, 1),
        ("--jobs", args.jobs, 1),
        ("--seed-start", args.seed_start, 0),
        ("--bootstrap", args.bootstrap, 100),
    ):
        if value < low:
            raise UsageError(f"{flag} must be >= {low}, got {value}")
    if args.timesteps is not None and args.timesteps < 1:
        raise UsageError(f"--timesteps must be >= 1, got {args.timesteps}")
    configs = load_configs(args)
    labels = list(configs)
    baseline = args.baseline or labels[-1]
    if baseline not in configs:
        raise UsageError(f"--baseline '{baseline}' is not one of --configs ({', '.join(labels)})")

    from cartpole_dqn.envs import check_env
    from cartpole_dqn.multiseed import RunSpec, run_many

    infos = {label: check_env(config) for label, config in configs.items()}
    env_ids = {info.env_id for info in infos.values()}
    if len(env_ids) > 1:
        raise UsageError(
            f"configs train different envs ({', '.join(sorted(env_ids))}); pass --env to align them"
        )
    info = next(iter(infos.values()))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    env_slug = info.env_id.replace("/", "-")
    try:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --output-dir {args.output_dir}: {exc.strerror}") from None
    stem = args.output_dir / f"benchmark-{env_slug}-{stamp}"
    if stem.with_suffix(".json").exists():
        raise UsageError(f"{stem.with_suffix('.json')} already exists; refusing to overwrite it")
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    specs = [
        RunSpec(
            label,
            config.replace(seed=seed),
            args.runs_dir / f"benchmark-{stamp}",
            args.log_dir / f"benchmark-{stamp}",
        )
        for seed in seeds
        for label, config in configs.items()
    ]
    solved_so_far = {label: [0, 0] for label in labels}
    start = time.perf_counter()

    def progress(result: dict[str, Any], done: int, total: int) -> None:
        tally = solved_so_far[result["label"]]
        tally[0] += bool(result["solved"])
        tally[1] += 1
        what = (
            f"solved at {result['steps_to_solve']:,} steps, {result['wall_to_solve_s']:.1f} s"
            if result["solved"]
            else f"not solved in {result['total_steps']:,} steps"
        )
        board = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in solved_so_far.items())
        print(
            f"[{done}/{total} {time.perf_counter() - start:5.0f} s] {result['label']} seed {result['seed']}: "
            f"{what} | solved so far: {board}",
            flush=True,
        )

    print(
        f"benchmark {info.env_id}: {len(labels)} configs × {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), "
        f"{args.jobs} parallel jobs, 1 torch thread each",
        flush=True,
    )
    runs = run_many(specs, jobs=args.jobs, on_result=progress)
    budget = max(c.total_timesteps for c in configs.values())
    summaries = summarize_all(runs, labels, baseline, budget, args.bootstrap)
    table = markdown_table(summaries, baseline, info.threshold)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}, torch CPU build"
    )
    record = {
        "env_id": info.env_id,
        "threshold": info.threshold,
        "max_return": info.max_return,
        "budget": budget,
        "seeds": seeds,
        "jobs": args.jobs,
        "baseline": baseline,
        "machine": machine,
        "command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]),
        "wall_s": time.perf_counter() - start,
        "configs": {label: config.to_dict() for label, config in configs.items()},
        "summaries": summaries,
        "runs": runs,
    }
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    plots = write_plots(runs, labels, configs, info.threshold, info.max_return, stem)
    markdown = (
        f"# Benchmark: {info.env_id}, {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), "
        f"budget {budget:,} steps\n\n"
        f"Command: `{record['command']}`  \nMachine: {machine}; {args.jobs} runs in parallel, "
        f"one torch thread each. Solved = first 100-episode greedy evaluation ≥ {info.threshold:g}"
        + (f" (maximum {info.max_return:g})" if info.max_return is not None else "")
        + "; unsolved seeds count as not solved, never dropped.\n\n"
        + table
        + "\n\n"
        + "".join(f"![{p.stem}]({p.name})\n" for p in plots)
    )
    stem.with_suffix(".md").write_text(markdown)
    print(table)
    print(f"results: {stem.with_suffix('.json')}, {stem.with_suffix('.md')}, " + ", ".join(map(str, plots)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
