"""Garbage collection (warehouse.inspect) keeps what environments serve and what retained publishes need."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gitops_data.deployment.core import Deployment
from gitops_data.warehouse.inspect import collect_garbage
from gitops_data_tests.conftest import SMALL_PROJECT, objects, query, sync
from gitops_data_tests.test_segments import INCREMENTAL, _events


@pytest.fixture
def warehouse(any_warehouse) -> str:
    """Both engines (the conformance suite)."""
    return any_warehouse


def _gc(ws: Deployment, dry_run: bool = False):
    with ws.catalog() as cat:
        return collect_garbage(cat, ws.production_settings(), dry_run, grace=timedelta(0))


def _views_resolve(ws: Deployment) -> None:
    with ws.catalog() as cat:
        schemas = [served.schema for served in cat.environments().values()]
    for schema in schemas:
        for view in objects(ws, schema):
            query(ws, f'select count(*) from "{schema}"."{view}"')


def test_gc_respects_retention_and_never_drops_served_builds(make_repo, warehouse, instance):
    files = dict(SMALL_PROJECT)
    files["gitops_data.yaml"] = "name: t\nretention: {publishes: 2}\n"
    repo = make_repo(files)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    first = {r[0] for r in query(ws, "select build_id from gitops_meta.builds where model = 'c'")}
    for factor in (3, 4, 5):
        repo.replace("project.yml", f"v * {factor - 1} as v2", f"v * {factor} as v2")
        repo.commit(f"x{factor}")
        sync(ws, "main", instance)
    assert _gc(ws, dry_run=True).dropped  # dry run drops nothing
    report = _gc(ws)
    dropped_models = sorted(b.model for b in report.dropped)
    assert dropped_models == ["b", "b", "c", "c"]  # the builds of the two oldest publishes
    assert first <= {b.build_id for b in report.dropped}
    _views_resolve(ws)
    assert _gc(ws).dropped == []


def test_gc_keeps_segments_shared_with_retained_builds(make_repo, warehouse, instance):
    files = dict(INCREMENTAL)
    files["gitops_data.yaml"] = "name: inc\nretention: {publishes: 1}\n"
    repo = make_repo(files)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    repo.write("data/events.csv", _events(range(1, 121)))
    repo.commit("more")
    sync(ws, "main", instance)
    report = _gc(ws)
    assert {b.model for b in report.dropped} == {"events", "events_inc", "total"}
    _views_resolve(ws)  # the served build still reads the first segment, which gc kept
    assert query(ws, "select count(*) from analytics.events_inc") == [(120,)]
