"""A data repo driven like a user would (git through subprocess), and a Dagster home for it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
# The Dagster instance settings the quickstart sets up (the repo's dagster.yaml).
DAGSTER_YAML = (Path(__file__).resolve().parents[2] / "dagster.yaml").read_text()


class DataRepo:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def git(self, *args: str) -> str:
        env = {**os.environ, **_GIT_ENV}
        return subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def write(self, rel: str, text: str) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def replace(self, rel: str, old: str, new: str) -> None:
        text = self.read(rel)
        if old not in text:
            raise ValueError(f"{old!r} not in {rel}")
        self.write(rel, text.replace(old, new, 1))

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref)


def init_repo(path: Path, files: dict[str, str]) -> DataRepo:
    """A fresh repo on branch main with `files` (text) plus anything already in the folder, committed."""
    path.mkdir(parents=True, exist_ok=True)
    repo = DataRepo(path)
    repo.git("init", "-q", "-b", "main")
    for rel, text in files.items():
        repo.write(rel, text)
    repo.commit("initial")
    return repo


def dagster_home(path: Path) -> Path:
    """A Dagster home set up as the quickstart does (the repo's dagster.yaml: local SQLite storage)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(DAGSTER_YAML)
    return path


def copy_scenario(src: Path, dst: Path) -> Path:
    """A private copy of a scenario folder (repo + warehouse + Dagster home) to change freely."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
    return dst
