"""The docs site builds strictly (a broken link, a bad reference or an API page whose docstrings do
not render fails), and the README stays a front door."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "--site-dir", str(site)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )


def test_the_docs_site_builds_strictly_with_its_api_reference(tmp_path: Path) -> None:
    result = mkdocs_build(REPO / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("DQNAgent", "QRDQNAgent", "PrioritizedReplayBuffer", "DuelingDQNPolicy", "RunConfig"):
        assert name in api
    assert "double_q" in api and "torch_threads" in api  # the constructor docs, from the docstrings
    pages = {p.stem for p in (REPO / "docs").glob("*.md")}
    assert {p.name for p in (tmp_path / "site").iterdir() if p.is_dir()} >= pages - {"index"}


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    """The control for the test above: the same strictness on a two-page site with a dead link."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the guide](guide.md) and [nowhere](missing.md).\n")
    (docs / "guide.md").write_text("# Guide\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((REPO / "mkdocs.yml").read_text().split("\nnav:", 1)[0] + "\n")
    result = mkdocs_build(config, tmp_path / "site")
    assert result.returncode != 0 and "missing.md" in result.stderr


def test_the_readme_is_a_short_front_door_linking_every_docs_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for page in (REPO / "docs").glob("*.md"):
        if page.name != "index.md":
            assert f"](docs/{page.name})" in readme, page.name
