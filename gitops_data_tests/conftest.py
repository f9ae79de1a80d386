"""Shared fixtures: real Git data repos in tmp dirs, a real DuckDB file, a real Dagster instance."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop"


def query(ws, sql: str, params: list | None = None) -> list[tuple]:
    """Read the warehouse of `ws` (a Deployment, or a location) like a consumer: a short read-only
    connection (DuckDB) or a plain session (PostgreSQL). Placeholders are `?` on both."""
    location = getattr(ws, "warehouse", ws)
    if str(location).startswith("sc://"):
        if "gitops_meta." not in sql:
            return [tuple(r) for r in _spark(location).sql(sql, args=params or None).collect()]
        from gitops_data.engines.locations import catalog_location

        location = catalog_location(location)  # Spark's catalog is kept in a store apart (a DuckDB file)
    if str(location).startswith("postgresql://"):
        import psycopg

        from gitops_data.engines.postgres import _qmarks

        with psycopg.connect(location, autocommit=True) as con:
            cur = con.execute(_qmarks(sql) if params else sql, params or None)
            return cur.fetchall() if cur.description else []
    import duckdb

    con = duckdb.connect(str(location), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def execute(location, sql: str) -> None:
    """Change the warehouse by hand, as a person with write access would (outside gitops-data)."""
    location = str(getattr(location, "warehouse", location))
    if location.startswith("sc://"):
        for statement in filter(str.strip, sql.split(";")):  # Spark runs one statement a call
            _spark(location).sql(statement).collect()
        return
    if location.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as con:
            con.execute(sql)
        return
    import duckdb

    con = duckdb.connect(location)
    try:
        con.execute(sql)
    finally:
        con.close()


def _spark(location: str):
    """A Spark Connect session to the test server, as a consumer has one (this process's session)."""
    from gitops_data.engines.spark import _session

    return _session(location)


@contextlib.contextmanager
def _engine(location):
    from gitops_data.engines import open_warehouse

    with open_warehouse(getattr(location, "warehouse", location)) as engine:
        yield engine


def objects(location, schema: str) -> dict[str, str]:
    """name -> 'TABLE' | 'VIEW' of what `schema` holds, on either engine."""
    with _engine(location) as engine:
        return engine.objects(schema)


def view_definitions(location, schema: str) -> dict[str, str]:
    """view -> its stored definition, on either engine."""
    with _engine(location) as engine:
        return engine.view_definitions(schema)


def column_types(location, schema: str, name: str) -> dict[str, str]:
    with _engine(location) as engine:
        return engine.columns(schema, name)


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


@pytest.fixture
def repo_dagster_home(tmp_path, monkeypatch) -> Path:
    """A DAGSTER_HOME with the repo's dagster.yaml (as the quickstart sets it up)."""
    home = tmp_path / "dagster_home_repo"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


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
    from gitops_data.deployment.apply import apply
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


@pytest.fixture(scope="session")
def spark_server(tmp_path_factory) -> Iterator[str]:
    """A Spark Connect server URL: GITOPS_DATA_TEST_SPARK when given, else one local server started
    for the test session (per pytest worker; ~20 s to its first answer). Skipped without pyspark."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed (uv pip install -e '.[spark]')")
    given = os.environ.get("GITOPS_DATA_TEST_SPARK")
    if given:
        yield given
        return
    from gitops_data_tests.spark_server import local_spark_server

    with local_spark_server(tmp_path_factory.mktemp("spark")) as url:
        yield url


@contextlib.contextmanager
def emptied_spark(server: str, catalog: Path) -> Iterator[str]:
    """The Spark server at `server` emptied (every database but `default` dropped: the tests on one
    server run one at a time), its catalog store the DuckDB file `catalog` (GITOPS_DATA_CATALOG)."""
    session = _spark(server)
    for (name,) in session.sql("show databases").collect():
        if name != "default":
            session.sql(f"drop database if exists `{name}` cascade").collect()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GITOPS_DATA_CATALOG", str(catalog))
        yield server


@pytest.fixture
def spark_warehouse(spark_server, tmp_path) -> Iterator[str]:
    """The emptied Spark test server with a fresh catalog store in `tmp_path`; its URL."""
    with emptied_spark(spark_server, tmp_path / "catalog" / "catalog.duckdb") as url:
        yield url


ENGINES = ["duckdb", "postgres", "spark"]  # those the closing line counts the tests of
# Spark costs ~20 s to start and ~0.1-0.5 s a statement: its cases are slow, left out of CI (long),
# and kept on one pytest worker (one server; with --dist loadgroup)
SPARK_PARAM = pytest.param(
    "spark", marks=[pytest.mark.slow, pytest.mark.long, pytest.mark.xdist_group("spark")]
)


ENGINE_PARAMS = ["duckdb", "postgres", SPARK_PARAM]


@pytest.fixture(params=ENGINE_PARAMS)
def any_warehouse(request, tmp_path) -> str:
    """A fresh warehouse on each engine: a DuckDB file, a new database on the test server, or the
    emptied Spark test server with a catalog store of its own."""
    if request.param == "duckdb":
        return str(tmp_path / "wh" / "warehouse.duckdb")
    if request.param == "spark":
        return request.getfixturevalue("spark_warehouse")
    return request.getfixturevalue("postgres_db")


def _engine_of(nodeid: str) -> str | None:
    """The engine a test ran on: its parameter, or its module (test_engine_<engine>.py)."""
    for engine in ENGINES:
        if f"[{engine}" in nodeid or f"-{engine}]" in nodeid or f"-{engine}-" in nodeid:
            return engine
        if f"test_engine_{engine}.py" in nodeid:
            return engine
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say how many engine-parametrized tests ran on each engine (none skipped silently)."""
    counts = {e: {"passed": 0, "failed": 0, "skipped": 0} for e in ENGINES}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            engine = _engine_of(getattr(report, "nodeid", ""))
            if engine and (outcome != "passed" or report.when == "call"):
                counts[engine]["failed" if outcome == "error" else outcome] += 1
    line = "; ".join(
        f"{e}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped" for e, c in counts.items()
    )
    terminalreporter.write_line(f"engine conformance: {line}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """With GITOPS_DATA_REQUIRE_PG=1 (CI), a run in which no PostgreSQL test passed fails."""
    if hasattr(session.config, "workerinput") or os.environ.get("GITOPS_DATA_REQUIRE_PG") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    passed = [r for r in reporter.stats.get("passed", []) if _engine_of(r.nodeid) == "postgres"]
    if session.testscollected and not passed and exitstatus == 0:
        reporter.write_line("GITOPS_DATA_REQUIRE_PG=1 but no PostgreSQL test passed", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def with_url_part(url: str, database: str | None = None, user: str | None = None) -> str:
    """`url` (postgresql://user@host:port/db?host=...) with another database and/or user."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rsplit('@', 1)[-1]}" if "@" in netloc else f"{user}@{netloc}"
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server at `server_url` (dropped after); its URL."""
    import uuid

    import psycopg

    name = f"gitops_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
        # a test database need not survive a crash of the server: commits do not wait for the WAL flush
        admin.execute(f'alter database "{name}" set synchronous_commit to off')
    try:
        yield with_url_part(server_url, database=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def postgres_db(postgres_server) -> Iterator[str]:
    """A fresh, empty database on the test server (dropped afterwards); its URL."""
    with fresh_database(postgres_server) as url:
        yield url
