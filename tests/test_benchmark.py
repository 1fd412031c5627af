from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cartpole_dqn.benchmarking.plots import curve_grid
from cartpole_dqn.run.results import RunResult
from cartpole_dqn.run.solve import EvalRecord
from cartpole_dqn.run.stats import bootstrap_median_ci, iqr, summarize
from tests.conftest import assert_one_line_error, run_in_process, run_module


def result(
    seed: int,
    steps: int | None,
    wall: float | None = None,
    stays: bool = True,
    budget: int = 50_000,
    evaluations: list[tuple[int, float]] = (),  # type: ignore[assignment]
) -> RunResult:
    """A run's result with only the fields the statistics read filled in meaningfully."""
    return RunResult(
        **{
            **dict.fromkeys(
                ["env_id", "run_name", "run_dir", "model_path", "config_path", "tensorboard_dir"], ""
            ),
            **dict.fromkeys(["setup_s", "train_wall_s", "eval_time_s", "eval_mean", "eval_std"], 0.0),
            **dict.fromkeys(["eval_min", "eval_max"], 0.0),
        },
        seed=seed,
        threshold=475.0,
        max_return=500.0,
        budget=budget,
        solved=steps is not None,
        steps_to_solve=steps,
        wall_to_solve_s=wall if steps is not None else None,
        total_steps=steps or budget,
        resumed=False,
        steps_per_s=1000.0,
        best_step=None,
        eval_episodes=100,
        final_eval_seed=0,
        stays_solved=stays,
        evaluations=[EvalRecord(step, 0.0, mean, 0.0, 100, True) for step, mean in evaluations],
    )


def test_iqr_and_medians_count_unsolved_seeds_and_only_solves_within_the_budget() -> None:
    assert iqr([5, 1, 4, 2, 3]) == (2.0, 4.0)
    s = summarize(
        [
            result(0, 1000, 1.0),
            result(1, 3000, 3.0),
            result(2, None, stays=False),
            result(3, 2100, 2.0, budget=2000),  # a solve recorded past its budget is no solve
        ]
    )
    assert (s.runs, s.solved, s.stays_solved) == (4, 2, 2)
    assert s.steps_median == 2000 and s.wall_median == 2.0
    # half the seeds unsolved: the median over all of them is "unsolved", never the average of a
    # solve and the budget (2,500 here, a figure no run reached)
    assert s.steps_median_all is None and s.wall_median_all is None
    three_of_four = summarize(
        [result(0, 1000, 1.0), result(1, 3000, 3.0), result(2, None), result(3, 2000, 2.0)]
    )
    assert three_of_four.steps_median_all == 2500 and three_of_four.wall_median_all == 2.5  # among solves


def test_censored_medians_and_their_bootstrap_never_mix_a_solve_with_the_budget() -> None:
    from cartpole_dqn.run.stats import bootstrap_censored_median_ci, censored_median

    assert censored_median([1000, 2000, None, None]) == float("inf")
    assert censored_median([None]) == float("inf") and censored_median([]) == float("inf")
    assert censored_median([1000, 3000, 2000, None]) == 2500  # two solves averaged, never the budget
    values = [1000, 2000, 3000, None, None, 4000]
    low, high = bootstrap_censored_median_ci(values, np.random.default_rng(0), resamples=2000)
    reachable = {1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 3500.0, 4000.0, float("inf")}
    assert low in reachable and high in reachable and low <= 2500 <= high


def test_ratios_compare_all_seeds_so_solving_fewer_seeds_never_looks_faster() -> None:
    """A config that solves 3 of 10 seeds quickly is not "faster" than one that solves all 10 more
    slowly: the ratio columns compare medians over every seed, and its median is "unsolved"."""
    from cartpole_dqn.benchmarking.tables import markdown_table
    from cartpole_dqn.run.stats import ratio

    fragile = summarize([result(i, 2000, 1.0) if i < 3 else result(i, None) for i in range(10)])
    steady = summarize([result(i, 8000, 4.0) for i in range(10)])
    assert fragile.steps_median == 2000  # over its 3 solves: 4x fewer than steady's
    fragile.steps_ratio_vs_baseline = ratio(steady.steps_median_all, fragile.steps_median_all)
    fragile.wall_ratio_vs_baseline = ratio(steady.wall_median_all, fragile.wall_median_all)
    assert fragile.steps_ratio_vs_baseline is None and fragile.wall_ratio_vs_baseline is None
    steady.steps_ratio_vs_baseline = steady.wall_ratio_vs_baseline = 1.0
    table = markdown_table({"fragile": fragile, "steady": steady}, "steady", 475.0, 50_000)
    assert "fewer steps than steady (all seeds)" in table
    (row,) = [line for line in table.splitlines() if line.startswith("| fragile")]
    assert row.endswith("| - | - |") and "all 10 seeds: unsolved (> 50,000)" in row


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
        result(0, 2000, evaluations=[(1000, 10.0), (2000, 500.0)]),
        result(1, None, evaluations=[(1000, 20.0), (2000, 30.0), (3000, 40.0)]),
    ]
    grid, values = curve_grid(runs, 1000, 3000)
    assert grid.tolist() == [1000, 2000, 3000]
    assert values.tolist() == [[10.0, 500.0, 500.0], [20.0, 30.0, 40.0]]


def test_the_curve_ends_at_the_budget_evaluation_even_off_the_eval_grid(tmp_path: Path) -> None:
    """Every run is evaluated once more at its budget. A budget that is not a multiple of eval_freq
    (or smaller than it: a short run of a config that evaluates every 5,000 steps) still has that
    evaluation on the curve, and the plots are drawn."""
    from cartpole_dqn.benchmarking.plots import write_plots

    runs = [result(0, None, budget=1000, evaluations=[(1000, -150.0)])]
    grid, values = curve_grid(runs, 5000, 1000)
    assert grid.tolist() == [1000] and values.tolist() == [[-150.0]]
    runs = [result(1, None, budget=12_000, evaluations=[(5000, 1.0), (10_000, 2.0), (12_000, 3.0)])]
    grid, values = curve_grid(runs, 5000, 12_000)
    assert grid.tolist() == [5000, 10_000, 12_000] and values.tolist() == [[1.0, 2.0, 3.0]]
    paths = write_plots({"short": runs}, {"short": 5000}, 12_000, 200.0, None, tmp_path / "b")
    assert all(path.is_file() for path in paths) and len(paths) == 2


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
    assert "solved so far" in result.stderr and "ETA" in result.stderr
    assert not (workdir / "experiments" / "results").exists()  # ad-hoc runs stay out of the tracked folder
    results = workdir / "experiments" / "benchmarks"
    (record_path,) = results.glob("benchmark-CartPole-v1-*.json")
    record = json.loads(record_path.read_text())
    assert len(record["runs"]) == 4
    # the CPU is named: the same code and seed can learn differently on another one
    import torch

    assert f"torch kernels: {torch.backends.cpu.get_cpu_capability()}" in record["machine"]
    # its TensorBoard runs are grouped under one folder per benchmark, beside the user's own runs
    (group,) = (workdir / "tensorboard_logs").iterdir()
    (bench,) = group.iterdir()
    assert (
        group.name == "benchmark"
        and bench.name.startswith("CartPole-v1-")
        and len(list(bench.iterdir())) == 4
    )
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
    assert "Python 3." in markdown and "torch 2." in markdown
    assert "default vs sb3_zoo_baseline, paired by seed (2 seeds" in markdown
    assert record["paired"]["default"]["seeds"] == [1000, 1001]
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
    assert_one_line_error(run_in_process("cartpole_dqn.benchmark", *args, cwd=workdir), *needles)
    assert not (workdir / "experiments" / "results").exists()


def test_the_table_labels_partial_solves_and_drops_ratios_for_a_single_config() -> None:
    from cartpole_dqn.benchmarking.tables import markdown_table

    two_of_three = summarize([result(1, 6000, 3.0), result(2, None), result(3, 7000, 4.0)])
    table = markdown_table({"only": two_of_three}, "only", 475.0, 50_000)
    assert "6,500 [6,250–6,750] over the 2 solved; all 3 seeds: 7,000" in table
    assert "fewer steps than" not in table and "×" not in table
    none_solved = summarize([result(1, None), result(2, None)])
    table = markdown_table({"a": two_of_three, "b": none_solved}, "b", 475.0, 50_000)
    assert "all 2 seeds: unsolved (> 50,000)" in table and "fewer steps than b" in table


@pytest.mark.slow
def test_a_diverging_run_counts_as_unsolved_and_the_benchmark_completes(workdir: Path) -> None:
    """Runs are deterministic per seed, so a diverging seed would diverge again on every rerun: it
    must count as unsolved (named in the output), not abort the benchmark."""
    (workdir / "diverge.yaml").write_text("learning_rate: 1.0e+30\nlearning_starts: 300\n")
    result = run_module(
        "cartpole_dqn.benchmark",
        *("--configs", "diverge.yaml", "default", "--seeds", "1", "--timesteps", "1500"),
        *("--jobs", "2", "--bootstrap", "200"),
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "diverge seed 1000: diverged, counted as unsolved (training diverged at step" in result.stderr
    assert "diverge seed 1000 diverged (counted as unsolved): training diverged at step" in result.stdout
    (record_path,) = (workdir / "experiments" / "benchmarks").glob("benchmark-CartPole-v1-*.json")
    record = json.loads(record_path.read_text())
    (diverged,) = [r for r in record["runs"] if r["label"] == "diverge"]
    assert diverged["diverged"].startswith("training diverged") and not diverged["solved"]
    assert record["summaries"]["diverge"]["diverged"] == 1
    assert not (Path(diverged["run_dir"]) / "final_model.zip").exists()  # its weights are not finite
