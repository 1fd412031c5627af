"""Run SB3's and sb3-contrib's own DQN / QR-DQN tests with our agents in place of theirs.

A drop-in must accept every argument stock ``DQN`` and ``QRDQN`` accept. The upstream suites are
the widest net for that: this script downloads the source distributions of the installed
versions (PyPI), and runs their tests selected by ``-k`` with a pytest plugin that replaces
``stable_baselines3.DQN`` by :class:`cartpole_dqn.DQNAgent` and ``sb3_contrib.QRDQN`` by
:class:`cartpole_dqn.QRDQNAgent` before the tests import them.

``python experiments/scripts/sb3_suites.py`` (a few minutes; needs network access to PyPI).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

PLUGIN = """
import sb3_contrib
import sb3_contrib.qrdqn
import sb3_contrib.qrdqn.qrdqn
import stable_baselines3
import stable_baselines3.dqn
import stable_baselines3.dqn.dqn

from cartpole_dqn import DQNAgent, QRDQNAgent

for module in (stable_baselines3, stable_baselines3.dqn, stable_baselines3.dqn.dqn):
    module.DQN = DQNAgent
for module in (sb3_contrib, sb3_contrib.qrdqn, sb3_contrib.qrdqn.qrdqn):
    module.QRDQN = QRDQNAgent
"""

SUITES = {"stable-baselines3": "dqn or DQN", "sb3-contrib": "qrdqn or QRDQN"}


def source(package: str, folder: Path) -> Path:
    """The unpacked sdist of the installed version of ``package``."""
    wanted = f"{package}=={version(package)}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-q",
            "-d",
            str(folder),
            wanted,
        ],
        check=True,
    )
    (archive,) = folder.glob(f"{package.replace('-', '_')}-*.tar.gz") or folder.glob(f"{package}-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    (root,) = [p for p in folder.iterdir() if p.is_dir() and (p / "tests").is_dir()]
    return root


def main() -> int:
    failed = 0
    for package, selection in SUITES.items():
        with tempfile.TemporaryDirectory() as tmp:
            root = source(package, Path(tmp))
            (root / "tests" / "swap_in_cartpole_dqn.py").write_text(PLUGIN)
            print(f"== {package} {version(package)}: tests -k {selection!r} with our agents", flush=True)
            # test modules that need Atari (ale_py, not a dependency here) cannot even be collected
            atari = [p for p in (root / "tests").glob("test_*.py") if "import ale_py" in p.read_text()]
            for path in atari:
                print(
                    f"   skipped {path.name}: it imports ale_py (Atari), which is not installed", flush=True
                )
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "swap_in_cartpole_dqn",
                    "-k",
                    selection,
                    "-p",
                    "no:cacheprovider",
                    *(f"--ignore={p}" for p in atari),
                    "tests",
                ],
                cwd=root,
                env={**__import__("os").environ, "PYTHONPATH": str(root / "tests")},
            )
            failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
