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
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cartpole_dqn.cli import OneLineParser, run_cli
from cartpole_dqn.config import RunConfig, integer, load_config, resolve_config_path
from cartpole_dqn.errors import UsageError
from cartpole_dqn.run.artifacts import write_atomic
from cartpole_dqn.run.verdict import plural

PROG = "python -m cartpole_dqn.benchmark"
DEFAULT_SEED_START = 1000  # below the tuner's seeds (10,000 and up): seeds nobody tuned on
FLAGS = {
    "runs_root": "--runs-dir",
    "log_root": "--log-dir",
    "results_dir": "--output-dir",
    "resume": "--resume",
}


def build_parser(prog: str = PROG) -> OneLineParser:
    parser = OneLineParser(prog=prog, description="Multi-seed benchmark of run configs.")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["default", "sb3_zoo_baseline"],
        help="config names (experiments/configs/NAME.yaml) or paths",
    )
    parser.add_argument(
        "--baseline", default=None, help="config the ratios are against (default: the last one)"
    )
    parser.add_argument("--seeds", type=integer, default=10, help="seeds per config (10)")
    parser.add_argument("--seed-start", type=integer, default=DEFAULT_SEED_START, help="first seed")
    parser.add_argument("--jobs", type=integer, default=os.cpu_count() or 1, help="parallel runs (CPU cores)")
    parser.add_argument(
        "--total-timesteps",
        "--timesteps",
        dest="timesteps",
        type=integer,
        default=None,
        help="budget for every config (default 50,000)",
    )
    parser.add_argument(
        "--env-id",
        "--env",
        dest="env",
        default=None,
        help="env id for every config (threshold from its spec)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("experiments/benchmarks"),
        help="results folder (default experiments/benchmarks, untracked; the committed figures were "
        "written with --output-dir experiments/results)",
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("experiments/runs"), help="run artifacts root")
    parser.add_argument("--log-dir", type=Path, default=Path("tensorboard_logs"), help="TensorBoard root")
    parser.add_argument(
        "--bootstrap", type=integer, default=10_000, help="bootstrap resamples for the median CI"
    )
    parser.add_argument("--no-progress", action="store_true", help="no per-run progress lines on stderr")
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUNS_JSONL",
        help="continue an interrupted benchmark from its <stem>.runs.jsonl (same command otherwise)",
    )
    return parser


def load_configs(args: Any) -> dict[str, RunConfig]:
    configs: dict[str, RunConfig] = {}
    for name in args.configs:
        path = resolve_config_path(name)
        overrides: dict[str, Any] = {"total_timesteps": args.timesteps or 50_000}
        if args.env is not None:
            overrides.update(env_id=args.env, threshold=None)
        label = path.stem if name == path.stem or name.endswith((".yaml", ".yml")) else name
        if label in configs:
            raise UsageError(f"config '{label}' is listed twice")
        configs[label] = load_config(path, overrides)
    return configs


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
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

    from cartpole_dqn.run.envs import check_env

    infos = {label: check_env(config) for label, config in configs.items()}
    env_ids = {info.env_id for info in infos.values()}
    if len(env_ids) > 1:
        raise UsageError(
            f"configs train different envs ({', '.join(sorted(env_ids))}); pass --env to align them"
        )
    info = next(iter(infos.values()))
    from cartpole_dqn.run.artifacts import ensure_writable_dir

    ensure_writable_dir(args.output_dir, "results_dir")
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    header = {"configs": {label: c.to_dict() for label, c in configs.items()}, "seeds": seeds}
    if args.resume is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        finished: dict[tuple[str, int], Any] = {}
    else:
        stamp, finished = read_journal(args.resume, header)
    stem = args.output_dir / f"benchmark-{info.env_id.replace('/', '-')}-{stamp}"
    if stem.with_suffix(".json").exists():
        raise UsageError(f"{stem.with_suffix('.json')} already exists; refusing to overwrite it")
    journal = journal_path(stem)
    if args.resume is None:
        if journal.exists():
            raise UsageError(f"{journal} already exists; refusing to overwrite it")
        write_atomic(journal, json.dumps(header) + "\n")
    print(
        f"benchmark {info.env_id}: {plural(len(labels), 'config')} × {plural(len(seeds), 'seed')} "
        f"({seeds[0]}..{seeds[-1]}), "
        f"{args.jobs} parallel jobs, 1 torch thread each"
        + (f"; {plural(len(finished), 'run')} already finished in {journal}" if finished else ""),
        flush=True,
    )
    given = list(argv if argv is not None else sys.argv[1:])
    from cartpole_dqn.run.multiseed import RunsInterrupted

    try:
        record = run_benchmark(args, configs, baseline, seeds, stamp, journal, finished)
    except RunsInterrupted as exc:
        again = given if "--resume" in given else [*given, "--resume", str(journal)]
        print(
            f"{prog}: interrupted: {exc.done + len(finished)} of {exc.total + len(finished)} runs finished "
            f"and kept in {journal}; resume with: {' '.join([prog, *map(shlex.quote, again)])}",
            file=sys.stderr,
        )
        return 128 + exc.signum
    record["command"] = " ".join([PROG, *(a for a in given if a != "--resume" and a != str(args.resume))])
    write_record(record, stem, info.threshold, info.max_return)
    journal.unlink()
    return 0


def journal_path(stem: Path) -> Path:
    """Where a benchmark records each finished run as it goes (deleted once the record is written)."""
    return stem.with_name(stem.name + ".runs.jsonl")


def read_journal(path: Path, header: dict[str, Any]) -> tuple[str, dict[tuple[str, int], Any]]:
    """The stamp and the finished runs of an interrupted benchmark, which must have run these configs."""
    from cartpole_dqn.run.results import RunResult

    name = path.name
    if not name.endswith(".runs.jsonl") or not path.is_file():
        raise UsageError(f"{path} is not a benchmark's .runs.jsonl file", about="resume")
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        recorded = lines[0]
        finished = {(r["label"], r["seed"]): RunResult.from_dict(r) for r in lines[1:]}
    except (ValueError, KeyError, TypeError, IndexError):
        raise UsageError(f"{path} is not a readable benchmark journal", about="resume") from None
    if recorded != json.loads(json.dumps(header)):
        raise UsageError(
            f"{path} was written by a benchmark of other configs or seeds; resume with the command that "
            "started it",
            about="resume",
        )
    stamp = name.removesuffix(".runs.jsonl").rsplit("-", 2)
    return f"{stamp[-2]}-{stamp[-1]}", finished


def run_benchmark(
    args: Any,
    configs: dict[str, RunConfig],
    baseline: str,
    seeds: list[int],
    stamp: str,
    journal: Path | None = None,
    finished: dict[tuple[str, int], Any] | None = None,
) -> dict[str, Any]:
    """Train every (config, seed), reporting each as it finishes; the record that write_record writes."""
    import numpy as np

    from cartpole_dqn.run.clock import clock, eta
    from cartpole_dqn.run.multiseed import RunSpec, run_many
    from cartpole_dqn.run.results import RunResult
    from cartpole_dqn.run.stats import (
        paired_difference,
        ratio,
        run_outcome,
        solved_within,
        summarize,
    )

    env_slug = next(iter(configs.values())).env_id.replace("/", "-")
    specs = [
        RunSpec(
            label,
            config.replace(seed=seed),
            args.runs_dir / f"benchmark-{stamp}",
            args.log_dir / "benchmark" / f"{env_slug}-{stamp}",
        )
        for seed in seeds
        for label, config in configs.items()
    ]
    finished = finished or {}
    solved_so_far = {label: [0, 0] for label in configs}
    for (label, _seed), result in finished.items():
        solved_so_far[label][0] += solved_within(result)
        solved_so_far[label][1] += 1
    todo = [spec for spec in specs if (spec.label, spec.config.seed) not in finished]
    start = time.perf_counter()

    def progress(spec: RunSpec, result: RunResult, done: int, total: int) -> None:
        if journal is not None:  # one line per finished run, appended: an interrupted benchmark resumes
            with journal.open("a") as handle:
                handle.write(json.dumps({"label": spec.label, **result.to_dict()}) + "\n")
        tally = solved_so_far[spec.label]
        tally[0] += solved_within(result)
        tally[1] += 1
        what = run_outcome(result)
        board = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in solved_so_far.items())
        elapsed = time.perf_counter() - start
        if not args.no_progress:
            print(
                f"[{done}/{total} {clock(elapsed)} ETA {eta(elapsed, done, total - done)}] {spec.label} "
                f"seed {result.seed}: {what} | solved so far: {board}",
                file=sys.stderr,
                flush=True,
            )

    ran = iter(run_many(todo, jobs=args.jobs, on_result=progress) if todo else [])
    results = [finished.get((spec.label, spec.config.seed)) or next(ran) for spec in specs]
    by_label = {
        label: [r for spec, r in zip(specs, results, strict=True) if spec.label == label] for label in configs
    }
    rng = np.random.default_rng(0)
    summaries = {label: summarize(runs, rng, args.bootstrap) for label, runs in by_label.items()}
    base = summaries[baseline]
    for s in summaries.values():  # over every seed: dropping unsolved seeds must not make a config look fast
        s.steps_ratio_vs_baseline = ratio(base.steps_median_all, s.steps_median_all)
        s.wall_ratio_vs_baseline = ratio(base.wall_median_all, s.wall_median_all)
    paired = {
        label: paired_difference(by_label[label], by_label[baseline], rng, args.bootstrap)
        for label in configs
        if label != baseline
    }
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"torch {version('torch')}"
    )
    return {
        "env_id": results[0].env_id,
        "threshold": results[0].threshold,
        "max_return": results[0].max_return,
        "budget": max(c.total_timesteps for c in configs.values()),
        "seeds": seeds,
        "jobs": args.jobs,
        "baseline": baseline,
        "machine": machine,
        "wall_s": time.perf_counter() - start,
        "configs": {label: config.to_dict() for label, config in configs.items()},
        "summaries": summaries,
        "paired": paired,
        "runs": by_label,
    }


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


def cli(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """The command line: ``main`` with one-line errors and exit statuses."""
    return run_cli(prog, lambda args: main(args, prog), argv, flags=FLAGS)


if __name__ == "__main__":
    sys.exit(cli())
