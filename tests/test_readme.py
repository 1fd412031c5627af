"""The README and the docs stay true: their commands are the ones CI runs, and each one works as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, run_module
from tests.test_train_integration import free_port

README = (REPO / "README.md").read_text()
# Every page that shows commands: the README, the docs site's pages and the results file.
PAGES = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "experiments" / "results" / "README.md",
]
DOCS = "\n".join(page.read_text() for page in PAGES)
DEVELOPMENT = (REPO / "docs" / "development.md").read_text()
RESULTS = (REPO / "experiments" / "results" / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOCS, flags=re.S)


def shell_commands() -> list[str]:
    return [line.strip() for block in blocks("bash") for line in block.splitlines() if line.strip()]


def test_readme_states_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = [b.strip() for b in re.findall(r"```bash\n(.*?)```", setup, flags=re.S)]
    assert len(commands) == 2
    train, test = commands
    assert train.startswith("pip install -c constraints.txt") and train.endswith(
        "python -m cartpole_dqn.train"
    )
    assert "pytest" in test
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci, "the README's test command must be a line of .ci/run"


# Every package command in the README runs as written, with these flags appended (argparse keeps the
# last value): the full-size benchmarks and sweeps are commands whose figures are committed under
# experiments/results, not tests. The first `train` of each kind still learns for real.
SCALED_DOWN = {
    "cartpole_dqn.train": ["--no-progress", "--total-timesteps", "1500"],
    "cartpole_dqn.tune": [
        *("--trials", "3", "--seeds-per-trial", "1", "--total-timesteps", "1500"),
        *("--validate-seeds", "1", "--workers", "2"),
    ],
    "cartpole_dqn.benchmark": ["--seeds", "1", "--total-timesteps", "1000", "--bootstrap", "200"],
}
# The README's first learning run trains as written (the set-up's bare `train` is the same config
# and seed, so it runs scaled down).
RUN_AS_WRITTEN = {"python -m cartpole_dqn.train --seed 0 --run-name first-run"}


@pytest.mark.slow
def test_every_package_command_in_the_readme_runs(workdir: Path) -> None:
    # each command once, in page order (the README's, then the docs pages', then the results file's)
    commands = list(
        dict.fromkeys(c.split("&& ", 1)[-1] for c in shell_commands() if "python -m cartpole_dqn" in c)
    )
    assert len(commands) >= 5
    for command in commands:
        argv = shlex.split(command)
        assert argv[:2] == ["python", "-m"]
        extra = SCALED_DOWN.get(argv[2], [])
        if command in RUN_AS_WRITTEN:
            extra = ["--no-progress"]
        elif argv[2] == "cartpole_dqn.tune" and "--report" in argv:
            extra = []  # read-only: it shows what the scaled-down sweep above recorded
        elif argv[2] == "cartpole_dqn.tune" and "--select" in argv:
            extra = ["--validate-seeds", "1"]
        result = run_module(argv[2], *argv[3:], *extra, cwd=workdir, timeout=600)
        assert result.returncode == 0, (command, result.stderr[-2000:])
    runs = {p.name for p in (workdir / "experiments" / "runs").iterdir()}
    assert {"first-run", "zoo-run", "all-plugins"} <= runs
    assert json.loads((workdir / "experiments" / "runs" / "first-run" / "results.json").read_text())["solved"]
    assert (workdir / "first-run.gif").is_file()
    assert list((workdir / "experiments" / "results").glob("benchmark-*.json"))


@pytest.mark.slow
def test_readme_tensorboard_command_serves_the_runs(workdir: Path) -> None:
    result = run_module(
        "cartpole_dqn.train",
        "--timesteps",
        "1000",
        "--learning-starts",
        "200",
        "--run-name",
        "tb",
        "--no-progress",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    (command,) = {c for c in shell_commands() if c.startswith("tensorboard ")}
    argv = shlex.split(command)
    argv[0] = str(Path(sys.executable).parent / "tensorboard")
    port = free_port()
    server = subprocess.Popen(
        [*argv, "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        runs: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "tb" not in runs:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as response:
                    runs = json.loads(response.read())
            except OSError:
                time.sleep(1)
        assert "tb" in runs
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_readme_paired_figures_are_what_the_script_prints_from_the_committed_record() -> None:
    """Each `python experiments/scripts/paired.py` command shown runs, and every line it prints is in
    the README as shown (the record it reads is committed)."""
    commands = [c for c in shell_commands() if c.startswith("python experiments/scripts/paired.py")]
    assert commands
    for command in commands:
        argv = shlex.split(command)
        result = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        lines = result.stdout.strip().splitlines()
        assert lines and all(line in DOCS for line in lines), lines


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path: Path) -> None:
    """The Python examples run as shown: the plug-ins' two, then the ONNX one in an export of the
    model the first of them saved."""
    import textwrap

    codes = blocks("python")
    onnx_codes = [code for code in codes if "onnxruntime" in code]
    plain = [code for code in codes if code not in onnx_codes]
    assert len(plain) == 2 and len(onnx_codes) == 1  # DQN and QR-DQN with every plug-in; ONNX Runtime
    for code in plain:
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "dqn_cartpole.zip").is_file()
    exported = run_module(
        "cartpole_dqn.export", "dqn_cartpole.zip", "--out", "onnx-policy", "--format", "onnx", cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    (code,) = onnx_codes
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path / "onnx-policy",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and re.fullmatch(r"return \d+\.\d\n", result.stdout), result.stderr[-2000:]


def test_the_layout_section_lists_every_module_and_only_existing_ones() -> None:
    layout = DEVELOPMENT.split("## Layout", 1)[1].split("\n## ", 1)[0]
    (tree,) = re.findall(r"```text\n(cartpole_dqn/.*?)```", layout, flags=re.S)
    listed: set[str] = set()
    folders = ["", "", ""]  # the folder open at each depth (indent 2, 4, 6)
    for line in tree.splitlines()[1:]:
        name = line.split()[0] if line.strip() else ""
        indent = len(line) - len(line.lstrip())
        if indent not in (2, 4, 6) or not name:
            continue  # top-level folders and wrapped description lines
        depth = indent // 2 - 1
        path = "".join(folders[:depth]) + name
        if name.endswith("/"):
            folders[depth] = name
            folders[depth + 1 :] = [""] * (len(folders) - depth - 1)
        else:
            listed.add(path)
            folders[depth:] = [""] * (len(folders) - depth)
    package = REPO / "cartpole_dqn"
    actual = {
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if p.name != "__init__.py" or p.parent == package
    }
    assert listed == actual


def test_the_four_task_table_is_what_the_committed_records_say() -> None:
    """Every row of the four-task table (solved, stays solved, median steps and wall with their IQRs,
    the steps ratio) is read off the committed benchmark record of its env; the zoo block's row is
    that record's baseline."""
    section = RESULTS.split("## Four tasks beside the zoo", 1)[1].split("\n## ", 1)[0]
    records = {}
    for env_id, stamp in re.findall(r"benchmark-([A-Za-z]+-v\d+)-(\d{8}-\d{6})\.\*", section):
        path = REPO / "experiments" / "results" / f"benchmark-{env_id}-{stamp}.json"
        records[env_id] = json.loads(path.read_text())
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 2 * len(records) == 8
    env_id = ""
    for row in rows:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if cells[0]:
            env_id, label = cells[0].split(" (")[0], cells[1]
        else:
            label = records[env_id]["baseline"]
        s = records[env_id]["summaries"][label]
        expected = [
            f"{s['solved']}/{s['runs']}",
            f"{s['stays_solved']}/{s['runs']}",
            "{:,.0f} [{:,.0f}–{:,.0f}]".format(s["steps_median"], *s["steps_iqr"]),
            "{:.1f} [{:.1f}–{:.1f}]".format(s["wall_median"], *s["wall_iqr"]),
            f"{s['steps_ratio_vs_baseline']:.1f}×",
        ]
        assert all(value in row for value in expected), (row, expected)
