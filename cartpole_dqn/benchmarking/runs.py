"""A benchmark's runs: every (config, seed) trained in worker processes, each reported as it
finishes and appended to the journal, then summarized against the baseline."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cartpole_dqn.config import RunConfig


@dataclass(frozen=True)
class BenchmarkSettings:
    """Where and how a benchmark runs (its flags, below the command line)."""

    runs_dir: Path
    log_dir: Path
    jobs: int
    bootstrap: int
    progress: bool = True


def run_benchmark(
    configs: dict[str, RunConfig],
    baseline: str,
    seeds: list[int],
    stamp: str,
    settings: BenchmarkSettings,
    journal: Path | None = None,
    finished: dict[tuple[str, int], Any] | None = None,
) -> dict[str, Any]:
    """Train every (config, seed), reporting each as it finishes; the record that
    :func:`cartpole_dqn.benchmarking.records.write_record` writes."""
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
            settings.runs_dir / f"benchmark-{stamp}",
            settings.log_dir / "benchmark" / f"{env_slug}-{stamp}",
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
        if settings.progress:
            print(
                f"[{done}/{total} {clock(elapsed)} ETA {eta(elapsed, done, total - done)}] {spec.label} "
                f"seed {result.seed}: {what} | solved so far: {board}",
                file=sys.stderr,
                flush=True,
            )

    ran = iter(run_many(todo, jobs=settings.jobs, on_result=progress) if todo else [])
    results = [finished.get((spec.label, spec.config.seed)) or next(ran) for spec in specs]
    by_label = {
        label: [r for spec, r in zip(specs, results, strict=True) if spec.label == label] for label in configs
    }
    rng = np.random.default_rng(0)
    summaries = {label: summarize(runs, rng, settings.bootstrap) for label, runs in by_label.items()}
    base = summaries[baseline]
    for s in summaries.values():  # over every seed: dropping unsolved seeds must not make a config look fast
        s.steps_ratio_vs_baseline = ratio(base.steps_median_all, s.steps_median_all)
        s.wall_ratio_vs_baseline = ratio(base.wall_median_all, s.wall_median_all)
    paired = {
        label: paired_difference(by_label[label], by_label[baseline], rng, settings.bootstrap)
        for label in configs
        if label != baseline
    }
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU cores ({cpu_model()}, "
        f"torch kernels: {cpu_capability()}), Python {platform.python_version()}, torch {version('torch')}"
    )
    return {
        "env_id": results[0].env_id,
        "threshold": results[0].threshold,
        "max_return": results[0].max_return,
        "budget": max(c.total_timesteps for c in configs.values()),
        "seeds": seeds,
        "jobs": settings.jobs,
        "baseline": baseline,
        "machine": machine,
        "wall_s": time.perf_counter() - start,
        "configs": {label: config.to_dict() for label, config in configs.items()},
        "summaries": summaries,
        "paired": paired,
        "runs": by_label,
    }


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it ("unknown" where it does not). Recorded because
    the same code and seed can learn differently on another CPU: its math kernels round differently,
    and a run's trajectory amplifies the difference."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_capability() -> str:
    """The vector instruction set torch's CPU kernels use here (e.g. AVX2, AVX512)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())
