"""Deployment end to end, with real processes: the warehouse follows Git with only the Dagster daemon
and a long-running code server (no webserver anywhere), and under `dagster dev` on a non-default
port. Commits on main and on a branch are built, audited and published by the sensor alone."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from gitops_data_tests.conftest import SMALL_PROJECT, fresh_database, query

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
INTERVAL = int(os.environ.get("GITOPS_DATA_TEST_SENSOR_INTERVAL", "3"))  # the sensor interval here


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _served(warehouse: str, env: str) -> str | None:
    """The commit `env` serves, read like a consumer (short read-only connections; retried while a
    writer holds the file)."""
    if warehouse.startswith("postgresql://"):
        try:
            rows = query(warehouse, "select commit from gitops_meta.environments where env = ?", [env])
        except Exception:  # noqa: BLE001 - the catalog does not exist yet
            return None
        return rows[0][0] if rows else None
    if not os.path.exists(warehouse):
        return None
    try:
        con = duckdb.connect(warehouse, read_only=True)
    except duckdb.Error:
        return None
    try:
        rows = con.execute("select commit from gitops_meta.environments where env = ?", [env]).fetchall()
        return rows[0][0] if rows else None
    except duckdb.Error:
        return None
    finally:
        con.close()


def _wait_published(warehouse: str, env: str, sha: str, procs: list, timeout: float = 150) -> float:
    """Seconds until `env` serves `sha`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if _served(warehouse, env) == sha:
            return time.monotonic() - t0
        for p in procs:
            assert p.poll() is None, f"{p.args[0]} exited with {p.returncode}"
        time.sleep(0.5)
    logs = "\n".join(Path(p.args_log).read_text()[-3000:] for p in procs)
    raise AssertionError(
        f"{env} does not serve {sha[:10]} after {timeout}s; serves {_served(warehouse, env)}\n{logs}"
    )


class Processes:
    """Background processes with their output in files; all stopped at the end."""

    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env, self.procs = tmp, env, []
        self.resources = contextlib.ExitStack()

    def enter(self, cm):
        """A context (a database) that lives until the processes have stopped."""
        return self.resources.enter_context(cm)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        p = subprocess.Popen(
            list(args),
            env=self.env,
            cwd=self.tmp,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        p.args_log = str(log)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, 15)
        for p in self.procs:  # the daemon can take 20 s to wind down; nothing here needs it to
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
        self.resources.close()


@pytest.fixture
def deployment(tmp_path, make_repo):
    repo = make_repo(SMALL_PROJECT)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "dagster.yaml", home / "dagster.yaml")
    warehouse = str(tmp_path / "warehouse.duckdb")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "GITOPS_DATA_REPO": str(repo.path),
        "GITOPS_DATA_WAREHOUSE": warehouse,
        "GITOPS_DATA_SENSOR_INTERVAL": str(INTERVAL),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    procs = Processes(tmp_path, env)
    yield repo, warehouse, procs
    procs.stop()


def _follow_main_and_a_branch(repo, warehouse: str, procs: Processes) -> dict[str, float]:
    first = _wait_published(warehouse, "main", repo.head(), procs.procs, timeout=240)
    repo.replace("project.yml", "v * 2 as v2", "v * 4 as v2")
    change = _wait_published(warehouse, "main", repo.commit("b times 4"), procs.procs)
    repo.git("checkout", "-q", "-b", "feature/x")
    repo.replace("project.yml", "v * 4 as v2", "v * 5 as v2")
    branch_head = repo.commit("b times 5 on a branch")
    repo.git("checkout", "-q", "main")
    branch = _wait_published(warehouse, "feature/x", branch_head, procs.procs)
    repo.git("merge", "-q", "--ff-only", "feature/x")  # a merge needs no build: a view flip
    merge = _wait_published(warehouse, "main", repo.head(), procs.procs)
    times = {"first": first, "one_model_change": change, "new_branch": branch, "merge": merge}
    print(
        f"\ncommit -> published (s), sensor interval {INTERVAL}s: "
        + ", ".join(f"{k} {v:.1f}" for k, v in times.items())
    )
    return times


def _code_server_and_daemon(procs: Processes) -> Path:
    """A long-running code server and the daemon loading it (the README's commands); the workspace."""
    port = _free_port()
    workspace = procs.tmp / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server: {{host: 127.0.0.1, port: {port}, location_name: gitops_data}}\n"
    )
    procs.start(
        "code_server",
        str(BIN / "dagster"),
        "code-server",
        "start",
        "-m",
        "gitops_data.orchestration.definitions",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    )
    procs.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", str(workspace))
    return workspace


@pytest.mark.long
def test_daemon_and_code_server_without_any_webserver(deployment):
    repo, warehouse, procs = deployment
    procs.env["GITOPS_DATA_DAGSTER_WEBSERVER"] = "off"
    _code_server_and_daemon(procs)
    times = _follow_main_and_a_branch(repo, warehouse, procs)
    # within two sensor intervals plus the build (a few seconds here), with slack for a busy machine
    assert times["merge"] < 4 * INTERVAL + 20


@pytest.mark.long
def test_three_processes_with_the_dagster_instance_on_postgresql(deployment, postgres_db, postgres_server):
    """The documented multi-machine set-up: the instance (runs, events, ticks) and the warehouse on
    PostgreSQL."""
    repo, _, procs = deployment
    warehouse = procs.env["GITOPS_DATA_WAREHOUSE"] = procs.enter(fresh_database(postgres_server))
    home = Path(procs.env["DAGSTER_HOME"])
    shutil.copy(
        Path(__file__).resolve().parent.parent / "examples" / "deploy" / "dagster.postgres.yaml",
        home / "dagster.yaml",
    )
    # dagster-postgres speaks psycopg2; SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://
    procs.env["DAGSTER_PG_URL"] = postgres_db.replace("postgresql://", "postgresql+psycopg2://", 1)
    workspace = _code_server_and_daemon(procs)
    web_port = _free_port()
    procs.env["GITOPS_DATA_DAGSTER_WEBSERVER"] = f"127.0.0.1:{web_port}"
    procs.start(
        "webserver",
        str(BIN / "dagster-webserver"),
        "-w",
        str(workspace),
        "-h",
        "127.0.0.1",
        "-p",
        str(web_port),
    )
    _follow_main_and_a_branch(repo, warehouse, procs)
    import psycopg2

    with psycopg2.connect(postgres_db) as con, con.cursor() as cur:  # the runs live in PostgreSQL
        cur.execute("select count(*) from runs where pipeline_name = 'gitops_plan' and status = 'SUCCESS'")
        assert cur.fetchone()[0] >= 3


def _asset_groups(port: int) -> set[str]:
    """The asset groups the webserver at `port` shows now (what the UI's asset graph lists)."""
    import json
    import urllib.request

    body = json.dumps({"query": "{ assetNodes { groupName } }"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            nodes = json.loads(response.read())["data"]["assetNodes"]
    except OSError:
        return set()
    return {n["groupName"] for n in nodes}


def test_dagster_dev_on_a_non_default_port(deployment):
    repo, warehouse, procs = deployment
    port = _free_port()
    # the sensor finds the webserver `dagster dev` started (its port is on its command line) and asks
    # it to reload: a new branch's group appears in the asset graph with nobody clicking "Reload"
    procs.env.pop("GITOPS_DATA_DAGSTER_WEBSERVER", None)
    procs.start(
        "dagster_dev",
        str(BIN / "dagster"),
        "dev",
        "-w",
        str(Path(__file__).resolve().parent.parent / "workspace.yaml"),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
    )
    _follow_main_and_a_branch(repo, warehouse, procs)
    from gitops_data.deployment.core import Deployment

    group = Deployment(str(repo.path), warehouse).environment("feature/x").schema
    deadline = time.monotonic() + 60
    while group not in (groups := _asset_groups(port)):
        assert time.monotonic() < deadline, f"group {group} never appeared; the graph shows {sorted(groups)}"
        time.sleep(1)
    assert "analytics" in groups
