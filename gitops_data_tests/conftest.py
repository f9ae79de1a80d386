"""Shared fixtures: real Git data repos in tmp dirs, a real DuckDB file, a real Dagster instance."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop"


def query(ws, sql: str, params: list | None = None) -> list[tuple]:
    """Read the warehouse of `ws` (a Workspace) like a consumer: a short read-only connection."""
    import duckdb

    con = duckdb.connect(ws.warehouse, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


class DataRepo:
    """A throw-away data repository driven like a user would: write files, commit, branch, merge."""

    def __init__(self, path: Path):
        self.path = path

    def git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
        return subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def write(self, rel: str, text: str | bytes) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text)

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def replace(self, rel: str, old: str, new: str) -> None:
        text = self.read(rel)
        assert old in text, f"{old!r} not in {rel}"
        self.write(rel, text.replace(old, new))

    def remove(self, rel: str) -> None:
        (self.path / rel).unlink()

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref)


def init_repo(path: Path, files: dict[str, str] | None = None, example: bool = False) -> DataRepo:
    path.mkdir(parents=True, exist_ok=True)
    if example:
        shutil.copytree(EXAMPLE, path, dirs_exist_ok=True)
    repo = DataRepo(path)
    repo.git("init", "-q", "-b", "main")
    for rel, text in (files or {}).items():
        repo.write(rel, text)
    repo.commit("initial")
    return repo


@pytest.fixture
def make_repo(tmp_path):
    """make_repo(files={...}) or make_repo(example=True): a committed data repo on branch main."""
    counter = iter(range(1000))

    def make(files: dict[str, str] | None = None, example: bool = False) -> DataRepo:
        return init_repo(tmp_path / f"repo{next(counter)}", files, example)

    return make


@pytest.fixture
def warehouse(tmp_path) -> str:
    return str(tmp_path / "wh" / "warehouse.duckdb")


@pytest.fixture
def instance(tmp_path):
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


SMALL_PROJECT = {
    "gitops_data.yaml": "name: t\n",
    "seeds/nums.csv": "id,v\n1,10\n2,20\n3,30\n",
    "project.yml": """
seeds:
  - name: nums
    path: seeds/nums.csv
models:
  - name: a
    sql: select id, v from nums
    columns:
      id: {type: bigint, unique: true, nullable: false}
      v: {checks: [{ge: 0}]}
  - name: b
    sql: select id, v * 2 as v2 from a
  - name: c
    sql: select count(*) as n from b
""",
}


def sync(ws, ref: str, instance, rebuild: frozenset[str] = frozenset(), env_name: str | None = None):
    """What `gitops-data sync` does: apply `ref` with an in-process Dagster run; raise if not published."""
    from gitops_data.apply import apply
    from gitops_data.orchestration.run import InProcessExecutor

    result = apply(ws, ref, InProcessExecutor(ws, instance), env_name=env_name, rebuild=rebuild)
    return result.raise_for_status()


def _reachable(url: str) -> bool:
    import psycopg2

    try:
        psycopg2.connect(url, connect_timeout=2).close()
        return True
    except psycopg2.Error:
        return False


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> str:
    """A PostgreSQL server URL (to its `postgres` database): GITOPS_DATA_TEST_PG_URL when given, else the
    server of these machines at 127.0.0.1:5432, else a throwaway server started here (pgserver)."""
    url = os.environ.get("GITOPS_DATA_TEST_PG_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    if os.environ.get("GITOPS_DATA_TEST_PG_URL") or _reachable(url):
        return url
    import pgserver

    server = pgserver.get_server(str(tmp_path_factory.mktemp("pgserver")), cleanup_mode="stop")
    return server.get_uri()


@pytest.fixture
def postgres_db(postgres_server) -> str:
    """A fresh, empty database on the test server (dropped afterwards); its URL."""
    import uuid

    import psycopg2

    name = f"gitops_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(postgres_server)
    admin.autocommit = True
    admin.cursor().execute(f'create database "{name}"')
    base, _, _ = postgres_server.rpartition("/")
    yield f"{base}/{name}"
    admin.cursor().execute(f'drop database if exists "{name}" with (force)')
    admin.close()
