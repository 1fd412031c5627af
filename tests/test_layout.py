"""The package's shape: no import cycles, a cheap import, CLIs that answer before torch, one public API."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "cartpole_dqn"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """Package modules that ``path`` imports when it runs: module level and inside functions alike;
    ``if TYPE_CHECKING:`` blocks are skipped (they never run)."""
    tree = ast.parse(path.read_text())
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rsplit(".", 1)[0]
    skipped = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in found if name in modules and name != this}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): runtime_imports(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 30 and "cartpole_dqn.run.runner" in graph["cartpole_dqn.commands.train"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The control: the check above can fail."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_layers_depend_downwards_only() -> None:
    """The plug-ins import nothing of the package but themselves; the protocol knows nothing of tooling."""
    graph = import_graph()
    for module, imported in graph.items():
        if module.startswith("cartpole_dqn.dqn"):
            assert not {m for m in imported if not m.startswith("cartpole_dqn.dqn")}, (module, imported)
        if module.startswith("cartpole_dqn.run"):
            assert not {
                m for m in imported if m.startswith(("cartpole_dqn.tuning", "cartpole_dqn.benchmarking"))
            }, module
        # the command lines are the top floor: only their entry points import them
        entry_points = {f"cartpole_dqn.{c}" for c in COMMAND_NAMES} | {"cartpole_dqn.__main__"}
        if module not in entry_points and not module.startswith("cartpole_dqn.commands"):
            assert not {m for m in imported if m.startswith("cartpole_dqn.commands")}, module
        # the two toolings share what lies below them (run/), never each other
        if module.startswith("cartpole_dqn.tuning"):
            assert not {m for m in imported if m.startswith("cartpole_dqn.benchmarking")}, module
        if module.startswith("cartpole_dqn.benchmarking"):
            assert not {m for m in imported if m.startswith("cartpole_dqn.tuning")}, module


COMMAND_NAMES = ("train", "evaluate", "export", "tune", "benchmark")


def test_the_root_holds_the_base_and_one_entry_point_per_command() -> None:
    """Commands live in commands/; at the root, each command's ``python -m`` entry point is a few
    lines that import it, beside the bottom floor (config, zoo files, errors, CLI plumbing)."""
    root = {p.stem for p in PACKAGE.glob("*.py")}
    assert root == {"__init__", "__main__", "_legacy", "cli", "config", "errors", "zoo", *COMMAND_NAMES}
    for name in COMMAND_NAMES:
        shim = (PACKAGE / f"{name}.py").read_text()
        assert f"from cartpole_dqn.commands.{name} import" in shim and len(shim.splitlines()) <= 15


def python(code: str, cwd: Path) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


HEAVY = ("torch", "stable_baselines3", "optuna", "gymnasium", "matplotlib")


def test_importing_the_package_imports_nothing_heavy(tmp_path: Path) -> None:
    loaded = python(f"import sys, cartpole_dqn; print([m for m in {HEAVY!r} if m in sys.modules])", tmp_path)
    assert loaded == "[]"
    # ... and the public names still resolve, loading their modules on first use.
    assert (
        python("import cartpole_dqn, sys; cartpole_dqn.DQNAgent; print('torch' in sys.modules)", tmp_path)
        == "True"
    )


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("train", ["--gamma", "2"]),
        ("train", ["--batch-size", "0"]),
        ("train", ["--help"]),
        ("train", ["--config", "missing.yaml"]),
        ("evaluate", ["--help"]),
        ("evaluate", ["model.zip", "--episodes", "0"]),
        ("tune", ["--help"]),
        ("tune", ["--trials", "0"]),
        ("benchmark", ["--help"]),
        ("benchmark", ["--seeds", "0"]),
        ("export", ["--help"]),
    ],
)
def test_clis_answer_help_and_bad_input_without_heavy_imports(
    tmp_path: Path, module: str, args: list[str]
) -> None:
    code = (
        "import sys\n"
        f"from cartpole_dqn.{module} import cli\n"
        "try:\n"
        f"    status = cli({args!r})\n"
        "except SystemExit as exit:\n"
        "    status = exit.code\n"
        f"print(status, [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    status, loaded = out.stderr.strip().splitlines()[-1].split(" ", 1)
    assert status in ("0", "2") and loaded == "[]", out.stderr


def test_the_public_api() -> None:
    import cartpole_dqn

    assert sorted(cartpole_dqn.__all__) == sorted(cartpole_dqn._PUBLIC)
    from cartpole_dqn.dqn import DQNAgent, DuelingDQNPolicy, PrioritizedReplayBuffer

    assert cartpole_dqn.DQNAgent is DQNAgent and cartpole_dqn.DuelingDQNPolicy is DuelingDQNPolicy
    assert cartpole_dqn.PrioritizedReplayBuffer is PrioritizedReplayBuffer
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cartpole_dqn.nope  # noqa: B018


def test_every_config_field_has_a_kind_and_every_activation_a_class() -> None:
    import dataclasses

    from torch import nn

    from cartpole_dqn.config import ACTIVATIONS, RunConfig, field_kind
    from cartpole_dqn.dqn.networks import ACTIVATION_CLASSES

    for f in dataclasses.fields(RunConfig):
        field_kind(f)  # a field of a type without a kind would raise KeyError
    assert set(ACTIVATION_CLASSES) == set(ACTIVATIONS)
    assert all(issubclass(cls, nn.Module) for cls in ACTIVATION_CLASSES.values())


def test_python_m_package_lists_the_commands_and_the_version(tmp_path: Path) -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "cartpole_dqn"], cwd=tmp_path, capture_output=True, text=True
    )
    assert listing.returncode == 0
    for command in ("train", "evaluate", "tune", "benchmark", "export"):
        assert f"  {command}  " in listing.stdout or f"  {command} " in listing.stdout
    version = subprocess.run(
        [sys.executable, "-m", "cartpole_dqn", "--version"], cwd=tmp_path, capture_output=True, text=True
    )
    import cartpole_dqn

    assert version.stdout.strip() == f"cartpole_dqn {cartpole_dqn.__version__}"


def console_script() -> str:
    found = shutil.which("cartpole-dqn") or str(Path(sys.executable).parent / "cartpole-dqn")
    if not Path(found).exists():
        pytest.fail("the cartpole-dqn console script is not installed: pip install -e .")
    return found


def test_the_console_script_runs_the_same_commands(tmp_path: Path) -> None:
    script = console_script()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run = lambda *args: subprocess.run([script, *args], cwd=tmp_path, capture_output=True, text=True, env=env)  # noqa: E731
    assert "commands:" in run().stdout
    helped = run("train", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: cartpole-dqn train")
    bad = run("train", "--gamma", "2")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "cartpole-dqn train: error: command line: gamma must be in (0, 1], got 2.0"
    )
    typo = run("trian")
    assert typo.returncode == 2 and "did you mean 'train'" in typo.stderr


def test_every_package_folder_is_a_regular_package() -> None:
    """setuptools' find_packages (pyproject.toml) ships only folders with an __init__.py."""
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert all((folder / "__init__.py").is_file() for folder in folders), sorted(map(str, folders))


def test_the_plug_ins_train_in_a_plain_sb3_script_without_the_rest_of_the_package(tmp_path: Path) -> None:
    """``from cartpole_dqn import DQNAgent, ...`` in an SB3 script, with the app's modules (config,
    run, tuning, benchmarking, errors) made unimportable: the plug-ins import and train."""
    code = """
import sys
for name in ("cartpole_dqn.config", "cartpole_dqn.run", "cartpole_dqn.tuning",
             "cartpole_dqn.benchmarking", "cartpole_dqn.errors", "cartpole_dqn.zoo"):
    sys.modules[name] = None  # any import of these now raises ImportError
from stable_baselines3.common.env_util import make_vec_env
from cartpole_dqn import DQNAgent, DuelingDQNPolicy, PrioritizedReplayBuffer, QRDQNAgent

env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
for cls in (DQNAgent, QRDQNAgent):
    agent = cls("DuelingMlpPolicy", env, double_q=True, replay_buffer_class=PrioritizedReplayBuffer,
                learning_starts=50, train_freq=8, gradient_steps=2, batch_size=16, seed=0)
    agent.learn(200)
    assert agent.num_timesteps == 200
print(isinstance(DQNAgent("DuelingMlpPolicy", env).policy, DuelingDQNPolicy))
"""
    assert python(code, tmp_path).splitlines()[-1] == "True"
