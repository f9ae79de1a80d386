"""The guardrail: changes made to the warehouse outside Git are detected, reported and repaired."""

from __future__ import annotations

import pytest

from gitops_data.deployment.core import Deployment
from gitops_data.warehouse.drift import detect_drift, repair
from gitops_data_tests.conftest import SMALL_PROJECT, execute, objects, query, sync


@pytest.fixture
def warehouse(any_warehouse) -> str:
    """Both engines (the conformance suite)."""
    return any_warehouse


def _drift(ws: Deployment) -> list[tuple[str, str]]:
    with ws.catalog() as cat:
        return sorted((d.kind, d.name) for d in detect_drift(cat, "gitops_internal"))


def _tamper(ws: Deployment) -> str:
    execute(ws, "create table analytics.by_hand as select 42 as answer")
    execute(ws, "drop view analytics.b")
    execute(ws, "create view analytics.b as select 1 as id, 2 as v2")
    execute(ws, "drop view analytics.c")
    table = query(
        ws,
        "select b.table_name from gitops_meta.env_views v join gitops_meta.builds b "
        "using (build_id) where v.model = 'a'",
    )[0][0]
    if ws.dialect == "spark":  # parquet tables have no DELETE: the change is a row more
        execute(ws, f"insert into gitops_internal.{table} select * from gitops_internal.{table} limit 1")
    else:
        execute(ws, f"delete from gitops_internal.{table} where id = 1")
    return table


def test_drift_detected_then_repaired(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    assert _drift(ws) == []
    table = _tamper(ws)
    assert _drift(ws) == [
        ("table_changed", f"gitops_internal.{table}"),
        ("unexpected_object", "by_hand"),
        ("view_changed", "b"),
        ("view_dropped", "c"),
    ]
    with ws.catalog() as cat:
        repair(cat, detect_drift(cat, "gitops_internal"))
    # views are restored at once; the changed build is marked invalid and still served until rebuilt
    assert _drift(ws) == [("invalid_build_served", f"gitops_internal.{table}")]
    assert "TABLE" not in objects(ws, "analytics").values()
    assert query(ws, "select count(*) from analytics.c") == [(1,)]
    result = sync(ws, "main", instance)  # rebuilds only `a`; b and c keep their builds
    assert result.status == "published" and result.publish.changed == ("a",)
    assert _drift(ws) == []
    assert query(ws, "select count(*) from analytics.a") == [(3,)]


def test_next_publish_removes_objects_made_by_hand(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    execute(ws, "create view analytics.sneaky as select 1 as x")
    execute(ws, "drop view analytics.b")
    execute(ws, "create view analytics.b as select 1 as id, 2 as v2")
    repo.replace("project.yml", "count(*) as n", "count(*) as n, sum(v2) as total")
    repo.commit("c changes")
    sync(ws, "main", instance)
    assert _drift(ws) == []
