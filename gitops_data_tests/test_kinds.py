"""Materialization kinds (table, view, ephemeral) and additive changes, on both engines."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gitops_data.deployment.core import Deployment
from gitops_data.errors import ProjectError
from gitops_data.plan import Action, Mode
from gitops_data.warehouse.inspect import collect_garbage
from gitops_data_tests.conftest import objects, query, sync


@pytest.fixture
def warehouse(any_warehouse) -> str:
    return any_warehouse


KINDS = {
    "gitops_data.yaml": "name: k\nretention: {publishes: 1}\n",
    "seeds/nums.csv": "id,v\n1,10\n2,-5\n3,30\n",
    "project.yml": """
seeds:
  - name: nums
    path: seeds/nums.csv
models:
  - name: positive
    materialized: ephemeral
    sql: select id, v from nums where v > 0
  - name: doubled
    materialized: view
    sql: select id, v * 2 as v2 from positive
    columns:
      v2: {checks: [{ge: 0}]}
  - name: total
    sql: select sum(v2) as s, count(*) as n from doubled
""",
}


def _plan(ws: Deployment, ref: str = "main", full: bool = False):
    sha = ws.resolve(ref)
    return ws.plan(sha, ws.environment(ref, ws.project(sha).settings), full=full)


def _gc(ws: Deployment):
    with ws.catalog() as cat:
        return collect_garbage(cat, ws.production_settings(), grace=timedelta(0))


def _resolve_all(ws: Deployment) -> None:
    for view in objects(ws, "analytics"):
        query(ws, f"select count(*) from analytics.{view}")


def test_views_and_ephemeral_models_build_publish_and_change(make_repo, warehouse, instance):
    repo = make_repo(KINDS)
    ws = Deployment(str(repo.path), warehouse)
    plan = _plan(ws)
    assert plan.models["positive"].action == Action.INLINE
    assert plan.models["doubled"].materialized == "view"
    sync(ws, "main", instance)
    assert set(objects(ws, "analytics")) == {"nums", "doubled", "total"}  # no object for the ephemeral
    built = dict(query(ws, "select model, table_name from gitops_meta.builds"))
    assert set(built) == {"nums", "doubled", "total"}
    internal = objects(ws, "gitops_internal")
    assert internal[built["doubled"]] == "VIEW" and internal[built["total"]] == "TABLE"
    assert sorted(query(ws, "select id, v2 from analytics.doubled")) == [(1, 20), (3, 60)]
    assert query(ws, "select s, n from analytics.total") == [(80, 2)]
    audits = query(
        ws,
        "select a.check_name, a.passed from gitops_meta.audits a join gitops_meta.builds b "
        "using (build_id) where b.model = 'doubled'",
    )
    assert audits == [("v2__ge", True)]  # the check ran on the view

    # a change inside the ephemeral model reaches everything that inlines it
    repo.replace("project.yml", "where v > 0", "where v > 10")
    repo.commit("stricter")
    plan = _plan(ws)
    assert plan.to_build == ["doubled", "total"]
    sync(ws, "main", instance)
    assert query(ws, "select s, n from analytics.total") == [(60, 1)]

    # the view becomes a table: only it is rebuilt; total keeps its build (same data)
    repo.replace("project.yml", "    materialized: view\n", "")
    repo.commit("doubled as a table")
    plan = _plan(ws)
    assert plan.to_build == ["doubled"] and plan.models["total"].action == Action.REUSE
    sync(ws, "main", instance)
    served = query(
        ws,
        "select b.table_name from gitops_meta.env_views v join gitops_meta.builds b using (build_id) "
        "where v.model = 'doubled'",
    )[0][0]
    assert objects(ws, "gitops_internal")[served] == "TABLE"
    _gc(ws)
    _resolve_all(ws)
    assert query(ws, "select s, n from analytics.total") == [(60, 1)]


def test_a_view_build_keeps_the_builds_it_reads_from_gc(make_repo, warehouse, instance):
    files = dict(KINDS)
    files["project.yml"] = KINDS["project.yml"].replace(
        "  - name: total\n", "  - name: total\n    materialized: view\n"
    )
    repo = make_repo(files)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    # nums gets a new build; doubled and total are new views over it; the old ones go
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,-5\n3,30\n4,40\n")
    repo.commit("more")
    sync(ws, "main", instance)
    report = _gc(ws)
    assert {b.model for b in report.dropped} == {"nums", "doubled", "total"}
    _resolve_all(ws)
    assert query(ws, "select s, n from analytics.total") == [(160, 3)]


def test_defaults_per_file_and_per_tag(make_repo, warehouse):
    repo = make_repo(
        {
            "gitops_data.yaml": "name: k\nmaterialized_by_tag: {helper: ephemeral}\n",
            "seeds/nums.csv": "id\n1\n",
            "staging.yml": "defaults: {materialized: view}\n"
            "models:\n  - name: s1\n    sql: select id from nums\n"
            "  - name: s2\n    materialized: table\n    sql: select id from s1\n",
            "marts.yml": "seeds:\n  - name: nums\n    path: seeds/nums.csv\n"
            "models:\n  - name: h\n    tags: [helper]\n    sql: select id from s2\n"
            "  - name: m\n    sql: select id from h\n",
        }
    )
    project = Deployment(str(repo.path), warehouse).project(repo.head())
    kinds = {n: nd.materialized for n, nd in project.nodes.items()}
    assert kinds == {"nums": "table", "s1": "view", "s2": "table", "h": "ephemeral", "m": "table"}
    assert project.physical_deps("m") == ("s2",)


@pytest.mark.parametrize(
    ("yml", "message"),
    [
        (
            "  - name: e\n    materialized: ephemeral\n    sql: select id from nums\n"
            "    columns: {id: {unique: true}}\n",
            "has no table to check",
        ),
        (
            "  - name: e\n    materialized: ephemeral\n    sql: select id from nums\n"
            "  - name: m\n    sql: select id from nums\n    checks:\n"
            "      - relationship: {column: id, to: e, field: id}\n",
            "reads ephemeral model 'e'",
        ),
        (
            "  - name: e\n    materialized: view\n    sql: select id from nums\n"
            "    incremental: {column: id}\n",
            "incremental model keeps its history in tables",
        ),
    ],
    ids=["checks_on_ephemeral", "relationship_to_ephemeral", "incremental_view"],
)
def test_kinds_that_cannot_work_are_validate_errors(make_repo, warehouse, yml, message):
    repo = make_repo(
        {
            "gitops_data.yaml": "name: k\n",
            "seeds/nums.csv": "id\n1\n",
            "p.yml": "seeds:\n  - name: nums\n    path: seeds/nums.csv\nmodels:\n" + yml,
        }
    )
    with pytest.raises(ProjectError) as exc:
        Deployment(str(repo.path), warehouse).project(repo.head())
    assert message in str(exc.value)


ADDITIVE = {
    "gitops_data.yaml": "name: k\n",
    "seeds/nums.csv": "id,v\n1,10\n2,20\n3,30\n",
    "project.yml": """
seeds:
  - name: nums
    path: seeds/nums.csv
models:
  - name: a
    sql: select id, v from nums
  - name: b
    sql: select id, v * 2 as v2 from a
  - name: b_view
    materialized: view
    sql: select id, v2 + 1 as v3 from b
  - name: c
    sql: select sum(v2) as s from b
  - name: star
    sql: select * from a
  - name: counted
    sql: select count(*) as n from a where exists (select * from nums)
""",
}


def _data(ws: Deployment) -> dict[str, list]:
    models = ("a", "b", "b_view", "c", "star", "counted")
    return {m: sorted(query(ws, f"select * from analytics.{m}")) for m in models}


def test_an_additive_change_keeps_the_data_of_downstream_models_that_do_not_read_it(
    make_repo, warehouse, tmp_path, instance
):
    repo = make_repo(ADDITIVE)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    tables = dict(query(ws, "select model, table_name from gitops_meta.builds"))

    repo.replace("project.yml", "select id, v from nums", "select id, v, v + 1 as w from nums")
    repo.commit("a gains a column")
    plan = _plan(ws)
    modes = {n: (m.action, m.mode) for n, m in plan.models.items()}
    assert modes["a"] == (Action.BUILD, Mode.FULL)
    assert modes["star"] == (Action.BUILD, Mode.FULL)  # select * reads the new column
    # count(*) and exists (select * ...) read no column
    assert {modes[n] for n in ("b", "b_view", "c", "counted")} == {(Action.BUILD, Mode.ALIAS)}
    assert "additive (new columns w): 4 downstream reused" in plan.models["a"].reason
    full = _plan(ws, full=True)
    assert set(full.to_build) == {"a", "b", "b_view", "c", "star", "counted"}

    sync(ws, "main", instance)
    served = dict(
        query(
            ws,
            "select v.model, b.table_name from gitops_meta.env_views v join gitops_meta.builds b "
            "using (build_id) where v.env = 'main'",
        )
    )
    assert all(served[m] == tables[m] for m in ("b", "b_view", "c", "counted"))  # no data written
    assert served["a"] != tables["a"] and served["star"] != tables["star"]
    assert query(ws, "select w from analytics.a order by id") == [(11,), (21,), (31,)]

    # the kept data equals what a full build of the same commit makes
    fresh = Deployment(str(repo.path), str(tmp_path / "fresh.duckdb"))
    sync(fresh, "main", instance)
    assert _data(ws) == _data(fresh)

    # the next commit plans the kept builds as plain reuse
    repo.replace("project.yml", "  - name: c\n", "  - name: c\n    description: the sum\n")
    repo.commit("a description")
    assert _plan(ws).to_build == []
    _gc(ws)
    _resolve_all(ws)


def test_changes_that_are_not_additive_rebuild_downstream(make_repo, warehouse, instance):
    repo = make_repo(ADDITIVE)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    # a new column, but also new data upstream: the rows of `a` changed
    repo.replace("project.yml", "select id, v from nums", "select id, v, v + 1 as w from nums")
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,20\n3,31\n")
    repo.commit("new column and new data")
    assert set(_plan(ws).to_build) == {"nums", "a", "b", "b_view", "c", "star", "counted"}
    sync(ws, "main", instance)
    # a filter changes rows
    repo.replace("project.yml", "v + 1 as w from nums", "v + 1 as w from nums where id > 1")
    repo.commit("filter")
    assert set(_plan(ws).to_build) == {"a", "b", "b_view", "c", "star", "counted"}
    # a downstream model that reads the new column by name
    sync(ws, "main", instance)
    repo.replace("project.yml", "select id, v * 2 as v2 from a", "select id, v * 2 as v2, w from a")
    repo.replace("project.yml", "where id > 1", "where id > 1")
    repo.replace(
        "project.yml", "select id, v, v + 1 as w from nums", "select id, v, v + 1 as w, 0 as z from nums"
    )
    repo.commit("b reads w, a adds z")
    plan = _plan(ws)
    assert plan.models["b"].mode == Mode.FULL  # its own definition changed
    assert plan.models["c"].mode == Mode.ALIAS  # b only gained w, which c does not read
