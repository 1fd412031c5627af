from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cartpole_dqn.benchmark import curve_grid
from cartpole_dqn.multiseed import bootstrap_median_ci, iqr, summarize
from tests.conftest import assert_one_line_error, run_module


def run(seed: int, solved: bool, steps: int | None, wall: float | None, stays: bool = True) -> dict:
    return {
        "seed": seed,
        "solved": solved,
        "steps_to_solve": steps,
        "wall_to_solve_s": wall,
        "stays_solved": stays,
        "steps_per_s": 1000.0,
        "total_steps": steps or 50_000,
    }


def test_iqr_and_median_on_known_inputs() -> None:
    assert iqr([1, 2, 3, 4, 5]) == (2.0, 4.0)
    s = summarize(
        [run(0, True, 1000, 1.0), run(1, True, 3000, 3.0), run(2, False, None, None, stays=False)],
        budget=50_000,
    )
    assert (s["runs"], s["solved"], s["stays_solved"]) == (3, 2, 2)
    assert s["steps_median"] == 2000 and s["wall_median"] == 2.0
    assert s["steps_to_solve_censored_median"] == 3000  # the unsolved seed counts as the budget, not dropped


def test_bootstrap_ci_of_the_median_covers_the_true_median_about_95_percent_of_the_time() -> None:
    """Coverage over 300 samples of 15 draws from an exponential (true median ln 2): a CI that were too
    narrow, too wide or centred elsewhere would land outside [0.85, 0.99]."""
    rng = np.random.default_rng(2)
    true_median = np.log(2.0)
    covered = 0
    widths = []
    for _ in range(300):
        sample = rng.exponential(size=15)
        low, high = bootstrap_median_ci(sample, rng, resamples=1000)
        covered += low <= true_median <= high
        widths.append(high - low)
        assert low <= float(np.median(sample)) <= high
    assert 0.85 <= covered / 300 <= 0.99
    assert 0.2 < float(np.median(widths)) < 1.5


def test_curve_grid_holds_the_last_value_after_a_run_stops() -> None:
    runs = [
        {"evaluations": [{"step": 1000, "mean": 10.0}, {"step": 2000, "mean": 500.0}]},
        {
            "evaluations": [
                {"step": 1000, "mean": 20.0},
                {"step": 2000, "mean": 30.0},
                {"step": 3000, "mean": 40.0},
            ]
        },
    ]
    grid, values = curve_grid(runs, 1000, 3000)
    assert grid.tolist() == [1000, 2000, 3000]
    assert values.tolist() == [[10.0, 500.0, 500.0], [20.0, 30.0, 40.0]]


@pytest.mark.slow
def test_benchmark_end_to_end_two_configs_two_seeds(workdir: Path) -> None:
    result = run_module(
        "cartpole_dqn.benchmark",
        "--configs",
        "default",
        "sb3_zoo_baseline",
        "--seeds",
        "2",
        "--timesteps",
        "2000",
        "--jobs",
        "2",
        "--bootstrap",
        "200",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "solved so far" in result.stdout
    results = workdir / "experiments" / "results"
    (record_path,) = results.glob("benchmark-CartPole-v1-*.json")
    record = json.loads(record_path.read_text())
    assert len(record["runs"]) == 4
    assert {(r["label"], r["seed"]) for r in record["runs"]} == {
        (c, s) for c in ("default", "sb3_zoo_baseline") for s in (1000, 1001)
    }
    for r in record["runs"]:
        assert {
            "solved",
            "steps_to_solve",
            "wall_to_solve_s",
            "stays_solved",
            "steps_per_s",
            "evaluations",
        } <= r.keys()
    assert set(record["summaries"]) == {"default", "sb3_zoo_baseline"}
    assert record["baseline"] == "sb3_zoo_baseline"
    markdown = record_path.with_suffix(".md").read_text()
    assert "| default |" in markdown and "| sb3_zoo_baseline |" in markdown
    for suffix in ("-curves.png", "-steps.png"):
        png = record_path.with_name(record_path.stem + suffix)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--configs", "nosuch"], ["unknown config 'nosuch'", "default"]),
        (["--seeds", "0"], ["--seeds must be >= 1"]),
        (["--configs", "default", "--baseline", "zoo"], ["--baseline 'zoo' is not one of --configs"]),
        (["--configs", "missing.yaml"], ["config file not found: missing.yaml"]),
        (["--env", "Pendulum-v1"], ["Pendulum-v1", "Discrete"]),
    ],
)
def test_benchmark_rejects_bad_input(workdir: Path, args: list[str], needles: list[str]) -> None:
    assert_one_line_error(run_module("cartpole_dqn.benchmark", *args, cwd=workdir), *needles)
    assert not (workdir / "experiments" / "results").exists()
