"""What only PostgreSQL has: consumer roles, other sessions' locks, users' objects depending on
published views, and a model dialect transpiled for the server. (Everything both engines do is
in the engine-parametrized suites: test_apply, test_audit, test_segments, test_drift, ...)"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from gitops_data.deployment.core import Deployment
from gitops_data.errors import ProjectError, PublishConflict
from gitops_data_tests.conftest import SMALL_PROJECT, execute, query, sync, with_url_part


@pytest.fixture
def role(postgres_db):
    """A login role made for one test (roles are server-wide), dropped afterwards."""
    name = f"bi_reader_{uuid.uuid4().hex[:8]}"
    execute(postgres_db, f'create role "{name}" login')
    yield name
    with psycopg.connect(postgres_db, autocommit=True) as con:
        con.execute(f'drop owned by "{name}"')
        con.execute(f'drop role "{name}"')


def _denied(url: str, sql: str) -> str:
    with (
        psycopg.connect(url, autocommit=True) as con,
        pytest.raises(psycopg.errors.InsufficientPrivilege) as e,
    ):
        con.execute(sql)
    return str(e.value)


def test_a_consumer_role_reads_the_external_schemas_and_nothing_else(make_repo, postgres_db, role, instance):
    files = dict(SMALL_PROJECT)
    files["gitops_data.yaml"] = f"name: t\nconsumers: [{role}]\n"
    repo = make_repo(files)
    ws = Deployment(str(repo.path), postgres_db)
    sync(ws, "main", instance)
    repo.git("checkout", "-q", "-b", "feature/x")
    repo.replace("project.yml", "v * 2 as v2", "v * 3 as v2")
    repo.commit("branch")
    sync(ws, "feature/x", instance)
    table = query(ws, "select table_name from gitops_meta.builds where model = 'a'")[0][0]
    branch_schema = ws.environment("feature/x", ws.project(repo.head()).settings).schema

    consumer = with_url_part(postgres_db, user=role)
    with psycopg.connect(consumer, autocommit=True) as con:
        assert con.execute("select v2 from analytics.b order by id").fetchall() == [(20,), (40,), (60,)]
        assert con.execute(f'select v2 from "{branch_schema}".b order by id').fetchall() == [
            (30,),
            (60,),
            (90,),
        ]
    assert "gitops_internal" in _denied(consumer, f'select * from gitops_internal."{table}"')
    assert "gitops_meta" in _denied(consumer, "select * from gitops_meta.builds")
    _denied(consumer, "insert into analytics.a values (9, 9)")
    _denied(consumer, "delete from analytics.a")
    _denied(consumer, "create table analytics.mine (x int)")
    _denied(consumer, "create table public.mine (x int)")
    _denied(consumer, "drop view analytics.a")

    # a later publish (new views) keeps the grant
    repo.git("checkout", "-q", "main")
    repo.replace("project.yml", "count(*) as n", "count(*) as n, 1 as one")
    repo.commit("c gains a column")
    sync(ws, "main", instance)
    with psycopg.connect(consumer, autocommit=True) as con:
        assert con.execute("select n, one from analytics.c").fetchall() == [(3, 1)]


def test_a_missing_consumer_role_is_reported_and_nothing_is_published(make_repo, postgres_db, instance):
    files = dict(SMALL_PROJECT)
    files["gitops_data.yaml"] = "name: t\nconsumers: [no_such_role_here]\n"
    ws = Deployment(str(make_repo(files).path), postgres_db)
    with pytest.raises(PublishConflict, match="no_such_role_here.*do not exist"):
        sync(ws, "main", instance)
    assert query(ws, "select count(*) from gitops_meta.environments") == [(0,)]


def test_a_users_view_on_a_published_view_is_never_dropped(make_repo, postgres_db, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), postgres_db)
    sync(ws, "main", instance)
    execute(
        ws, "create schema reports; create view reports.b_plus as select id, v2 + 1 as w from analytics.b"
    )

    # new columns at the end: CREATE OR REPLACE keeps the user's view working
    repo.replace("project.yml", "v * 2 as v2 from a", "v * 2 as v2, v as v_raw from a")
    c2 = repo.commit("b gains a column")
    sync(ws, "main", instance)
    assert query(ws, "select w from reports.b_plus order by id") == [(21,), (41,), (61,)]
    assert query(ws, "select commit from gitops_meta.environments") == [(c2,)]

    # a column removed: the view must be dropped, which would take the user's view with it
    repo.replace("project.yml", "v * 2 as v2, v as v_raw from a", "v * 5 as v5 from a")
    repo.replace("project.yml", "select count(*) as n from b", "select count(*) as n from b where v5 > 0")
    repo.commit("b changes shape")
    with pytest.raises(PublishConflict) as exc:
        sync(ws, "main", instance)
    assert "reports.b_plus depends on it" in str(exc.value) and "CASCADE" in str(exc.value)
    assert query(ws, "select commit from gitops_meta.environments") == [(c2,)]  # the last good state
    assert query(ws, "select v2, v_raw from analytics.b order by id") == [(20, 10), (40, 20), (60, 30)]
    assert query(ws, "select w from reports.b_plus order by id") == [(21,), (41,), (61,)]

    execute(ws, "drop view reports.b_plus")  # the user re-points their object; the next sync publishes
    sync(ws, "main", instance)
    assert query(ws, "select v5 from analytics.b order by id") == [(50,), (100,), (150,)]


def test_a_reader_holding_a_view_delays_a_publish_but_never_fails_or_tears_it(
    make_repo, postgres_db, instance
):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), postgres_db)
    sync(ws, "main", instance)
    repo.replace("project.yml", "v * 2 as v2 from a", "v * 2 as v2, 0 as z from a")
    c2 = repo.commit("b gains a column")

    held = threading.Event()

    def reader() -> None:  # an analyst's open transaction: its lock on analytics.b lasts until commit
        with psycopg.connect(postgres_db) as con:
            con.execute("select * from analytics.b").fetchall()
            held.set()
            time.sleep(3)
            con.rollback()

    t = threading.Thread(target=reader)
    t.start()
    held.wait(10)
    start = time.monotonic()
    sync(ws, "main", instance)
    waited = time.monotonic() - start
    t.join()
    assert waited > 2.5  # it waited for the reader (lock timeout, rollback, retry) ...
    assert query(ws, "select commit from gitops_meta.environments") == [(c2,)]  # ... and published
    assert query(ws, "select z from analytics.b") == [(0,), (0,), (0,)]


def test_models_are_transpiled_and_duckdb_only_sql_is_a_validate_error(make_repo, postgres_db, instance):
    files = dict(SMALL_PROJECT)
    files["project.yml"] = SMALL_PROJECT["project.yml"].replace(
        "select count(*) as n from b", "select v2 % 20 as k, count(*) as n from b group by all"
    )
    repo = make_repo(files)
    ws = Deployment(str(repo.path), postgres_db)
    sync(ws, "main", instance)  # GROUP BY ALL is rewritten for PostgreSQL
    assert sorted(query(ws, "select k, n from analytics.c")) == [(0, 3)]

    repo.replace("project.yml", "select id, v * 2 as v2 from a", "select * exclude (v), v * 2 as v2 from a")
    bad = repo.commit("DuckDB-only syntax")
    with pytest.raises(ProjectError) as exc:
        ws.project(bad)
    issue = exc.value.issues[0]
    assert issue.file == "project.yml" and issue.line == 12 and issue.model == "b"
    assert "EXCLUDE" in issue.message and "postgres" in issue.message
    Deployment(str(repo.path), "/tmp/unused.duckdb").project(bad)  # the same commit is fine on DuckDB


def test_a_project_written_in_the_postgres_dialect_runs_on_both_engines(make_repo, any_warehouse, instance):
    files = dict(SMALL_PROJECT)
    files["gitops_data.yaml"] = "name: t\ndialect: postgres\n"
    files["project.yml"] = SMALL_PROJECT["project.yml"].replace(
        "select count(*) as n from b", "select count(*)::text || ' rows' as n, 'A' ilike 'a' as ci from b"
    )
    ws = Deployment(str(make_repo(files).path), any_warehouse)
    sync(ws, "main", instance)
    assert query(ws, "select n, ci from analytics.c") == [("3 rows", True)]


def test_readers_in_a_loop_never_fail_and_never_see_a_mix_of_commits(make_repo, postgres_db, instance):
    """Four readers query two views in one statement (one snapshot) while commits are built and
    published: builds never block them, and `b` always agrees with `a` (never a mix of commits)."""
    files = dict(SMALL_PROJECT)
    files["project.yml"] = SMALL_PROJECT["project.yml"].replace(
        "select count(*) as n from b", "select sum(v2) as n from b"
    )
    repo = make_repo(files)
    ws = Deployment(str(repo.path), postgres_db)
    sync(ws, "main", instance)
    stop = threading.Event()
    seen: list[tuple] = []
    errors: list[str] = []

    def reader() -> None:
        with psycopg.connect(postgres_db, autocommit=True, prepare_threshold=None) as con:
            while not stop.is_set():
                try:
                    seen.append(
                        con.execute(
                            "select (select sum(v) from analytics.a), (select n from analytics.c)"
                        ).fetchone()
                    )
                except psycopg.Error as exc:
                    errors.append(str(exc))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for k in range(2, 6):
            repo.write("seeds/nums.csv", f"id,v\n1,{10 * k}\n2,20\n3,30\n")
            repo.commit(f"v{k}")
            sync(ws, "main", instance)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert len(seen) > 50
    assert all(n == 2 * a for a, n in seen), {r for r in seen if r[1] != 2 * r[0]}
    assert len({a for a, _ in seen}) >= 3  # the readers did see several commits go by
