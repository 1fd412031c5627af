"""``python -m cartpole_dqn.benchmark``: many seeds per config, side by side with the SB3 baseline.

Every (config, seed) pair is an ordinary training run (the same factory and solve callback as
``train``), run in parallel worker processes with one torch thread each. The baseline runs in the
same invocation, so the ratios are meaningful on a noisy machine. Writes a JSON file with every
run, a Markdown table and PNG plots to ``--output-dir``.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cartpole_dqn.benchmarking.journal import journal_path, read_journal
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

    from cartpole_dqn.run.envs import env_info_of

    infos = {label: env_info_of(config) for label, config in configs.items()}
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
    from cartpole_dqn.benchmarking.records import write_record
    from cartpole_dqn.benchmarking.runs import BenchmarkSettings, run_benchmark
    from cartpole_dqn.run.multiseed import RunsInterrupted

    try:
        settings = BenchmarkSettings(
            args.runs_dir, args.log_dir, args.jobs, args.bootstrap, not args.no_progress
        )
        record = run_benchmark(configs, baseline, seeds, stamp, settings, journal, finished)
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


def cli(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """The command line: ``main`` with one-line errors and exit statuses."""
    return run_cli(prog, lambda args: main(args, prog), argv, flags=FLAGS)


if __name__ == "__main__":
    sys.exit(cli())
