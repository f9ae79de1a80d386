"""The guardrail: changes made to the warehouse outside Git are detected, reported and repaired."""

from __future__ import annotations

import duckdb

from gitops_data.warehouse.drift import detect_drift, repair
from gitops_data.workspace import Workspace
from gitops_data_tests.conftest import SMALL_PROJECT, sync


def _drift(ws: Workspace) -> list[tuple[str, str]]:
    with ws.catalog("gitops_meta") as cat:
        return sorted((d.kind, d.name) for d in detect_drift(cat, "gitops_internal"))


def _tamper(ws: Workspace) -> str:
    con = duckdb.connect(ws.warehouse)
    try:
        con.execute("create table analytics.by_hand as select 42 as answer")
        con.execute("create or replace view analytics.b as select 1 as id, 2 as v2")
        con.execute("drop view analytics.c")
        table = con.execute(
            "select b.table_name from gitops_meta.env_views v join gitops_meta.builds b "
            "using (build_id) where v.model = 'a'"
        ).fetchall()[0][0]
        con.execute(f"delete from gitops_internal.{table} where id = 1")
        return table
    finally:
        con.close()


def test_drift_detected_then_repaired(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Workspace(str(repo.path), warehouse)
    sync(ws, "main", instance)
    assert _drift(ws) == []
    table = _tamper(ws)
    assert _drift(ws) == [
        ("table_changed", f"gitops_internal.{table}"),
        ("unexpected_object", "by_hand"),
        ("view_changed", "b"),
        ("view_dropped", "c"),
    ]
    with ws.catalog("gitops_meta") as cat:
        repair(cat, detect_drift(cat, "gitops_internal"))
    # views are restored at once; the changed build is marked invalid and still served until rebuilt
    assert _drift(ws) == [("invalid_build_served", f"gitops_internal.{table}")]
    con = duckdb.connect(ws.warehouse, read_only=True)
    assert con.execute("select count(*) from duckdb_tables() where schema_name = 'analytics'").fetchall() == [
        (0,)
    ]
    assert con.execute("select count(*) from analytics.c").fetchall() == [(1,)]
    con.close()
    result = sync(ws, "main", instance)  # rebuilds only `a`; b and c keep their builds
    assert result.status == "published" and result.publish.changed == ("a",)
    assert _drift(ws) == []
    con = duckdb.connect(ws.warehouse, read_only=True)
    assert con.execute("select count(*) from analytics.a").fetchall() == [(3,)]
    con.close()


def test_next_publish_removes_objects_made_by_hand(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Workspace(str(repo.path), warehouse)
    sync(ws, "main", instance)
    con = duckdb.connect(ws.warehouse)
    con.execute("create view analytics.sneaky as select 1 as x")
    con.execute("create or replace view analytics.b as select 1 as id, 2 as v2")
    con.close()
    repo.replace("project.yml", "count(*) as n", "count(*) as n, sum(v2) as total")
    repo.commit("c changes")
    sync(ws, "main", instance)
    assert _drift(ws) == []
