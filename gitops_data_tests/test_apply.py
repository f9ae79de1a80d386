"""Write-audit-publish through `apply`: real Git repos, a real DuckDB file, real (in-process) Dagster runs.

A commit is built into new immutable tables, audited, and only then published by flipping views; a
failing blocking check, a failing build or an invalid project leaves the previous commit served.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from gitops_data.deployment.core import Deployment
from gitops_data.errors import BuildError, PublishBlocked
from gitops_data_tests.conftest import SMALL_PROJECT, column_types, execute, objects, sync, view_definitions
from gitops_data_tests.conftest import query as q


@pytest.fixture
def warehouse(any_warehouse) -> str:
    """Every scenario here runs on both engines (the conformance suite)."""
    return any_warehouse


ANALYTICS_B_V1 = [(1, 20), (2, 40), (3, 60)]


def served_commit(ws: Deployment, env: str = "main") -> str | None:
    rows = q(ws, "select commit from gitops_meta.environments where env = ?", [env])
    return rows[0][0] if rows else None


def env_views(ws: Deployment, env: str = "main") -> dict[str, str]:
    return dict(q(ws, "select model, build_id from gitops_meta.env_views where env = ?", [env]))


def builds_count(ws: Deployment) -> int:
    return q(ws, "select count(*) from gitops_meta.builds")[0][0]


def orphan_tables(ws: Deployment) -> list[str]:
    """Internal tables with no catalog row: a build that half-happened."""
    known = {r[0] for r in q(ws, "select table_name from gitops_meta.builds")}
    known |= {r[0] for r in q(ws, "select table_name from gitops_meta.segments")}
    return sorted(
        t for t, kind in objects(ws, "gitops_internal").items() if kind == "TABLE" and t not in known
    )


def assert_serves(ws: Deployment, sha: str, env: str = "main", schema: str = "analytics") -> None:
    """`schema` serves exactly the builds the catalog says, all of commit `sha`'s fingerprints."""
    assert served_commit(ws, env) == sha
    fps = ws.fingerprints(sha)
    project = ws.project(sha)
    views = view_definitions(ws, schema)
    rows = q(
        ws,
        """select v.model, b.table_name, v.definition, b.fingerprint from gitops_meta.env_views v
                    join gitops_meta.builds b using (build_id) where v.env = ?""",
        [env],
    )
    recorded = {model: table for model, table, _, _ in rows}
    assert set(views) == set(recorded) == {n for n, nd in project.nodes.items() if nd.built}
    for model, table, definition, fp in rows:
        assert table in views[model], (model, table, views[model])
        assert definition == views[model], model
        assert fp == fps[model], model  # an alias build shares its table, not its fingerprint


# --------------------------------------------------------------------------------------------------
# blocking checks


def test_blocking_failure_is_not_published_and_next_good_commit_is(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    c1 = repo.head()
    assert sync(ws, "main", instance).status == "published"
    assert q(ws, "select * from analytics.b order by id") == ANALYTICS_B_V1
    views_v1 = env_views(ws)

    repo.write("seeds/nums.csv", "id,v\n1,10\n2,-5\n3,30\n")
    bad = repo.commit("negative value")
    with pytest.raises(PublishBlocked) as exc:
        sync(ws, "main", instance)
    assert exc.value.exit_code == 3
    assert "a.v__ge" in str(exc.value)

    # nothing changed for readers
    assert q(ws, "select * from analytics.b order by id") == ANALYTICS_B_V1
    assert q(ws, "select * from analytics.a order by id") == [(1, 10), (2, 20), (3, 30)]
    assert env_views(ws) == views_v1
    assert_serves(ws, c1)
    assert q(ws, "select status, commit from gitops_meta.ref_status where env = 'main'") == [("blocked", bad)]
    assert q(ws, "select count(*) from gitops_meta.publishes") == [(1,)]

    # the failed build stays in the internal schema for inspection
    ((build_id, table),) = q(
        ws, "select build_id, table_name from gitops_meta.builds where model = 'a' and commit = ?", [bad]
    )
    assert q(ws, f'select id, v from gitops_internal."{table}" order by id') == [(1, 10), (2, -5), (3, 30)]
    assert build_id not in views_v1.values()

    # the audit recorded the failure with the number of failing rows and a sample of them
    rows = q(
        ws,
        """select passed, severity, failed_rows, sample, table_rows from gitops_meta.audits
                    where build_id = ? and check_name = 'v__ge'""",
        [build_id],
    )
    assert len(rows) == 1
    passed, severity, failed_rows, sample, table_rows = rows[0]
    assert (passed, severity, failed_rows, table_rows) == (False, "error", 1, 3)
    assert [str(x) for x in json.loads(sample)] == ["-5"]
    # the other checks of that build ran and passed
    assert q(ws, "select count(*) from gitops_meta.audits where build_id = ? and passed", [build_id]) == [
        (3,)
    ]

    # the plan of the bad commit is not ready and names the failure
    plan = ws.plan(bad, ws.environment("main", ws.project(bad).settings))
    assert not plan.ready and plan.failures() == [("a", "v__ge", 1)]
    assert sorted(plan.to_build) == ["b", "c"]  # downstream of the failed check was never built

    # the next good commit publishes
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,5\n3,30\n")
    good = repo.commit("fixed")
    result = sync(ws, "main", instance)
    assert result.status == "published" and result.publish.previous_commit == c1
    assert q(ws, "select * from analytics.b order by id") == [(1, 20), (2, 10), (3, 60)]
    assert_serves(ws, good)
    assert q(ws, "select status from gitops_meta.ref_status where env = 'main'") == [("published",)]
    assert orphan_tables(ws) == []


# --------------------------------------------------------------------------------------------------
# warn severity

WARN_PROJECT = {
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
      id: {unique: true}
      v: {checks: [{ge: 15, severity: warn}]}
  - name: b
    sql: select sum(v) as total from a
""",
}


def test_warn_failure_publishes_and_is_reported(make_repo, warehouse, instance):
    repo = make_repo(WARN_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    result = sync(ws, "main", instance)

    assert result.status == "published"
    assert result.failures == []
    assert result.warnings == [("a", "v__ge", 1)]
    assert_serves(ws, repo.head())
    assert q(ws, "select total from analytics.b") == [(60,)]

    ((passed, severity, failed_rows),) = q(
        ws,
        """select passed, severity, failed_rows from gitops_meta.audits
                                              where check_name = 'v__ge'""",
    )
    assert (passed, severity, failed_rows) == (False, "warn", 1)

    key = dg.AssetCheckKey(dg.AssetKey(["analytics", "a"]), "v__ge")
    record = instance.get_latest_asset_check_evaluation_record(key)
    assert record is not None and record.run_id == result.run_id
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["failed_rows"].value == 1

    ok = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey(["analytics", "a"]), "id__unique")
    )
    assert ok.event.dagster_event.event_specific_data.passed is True


# --------------------------------------------------------------------------------------------------
# check-only changes


def test_check_only_change_reaudits_without_building(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    n_builds = builds_count(ws)
    n_audits = q(ws, "select count(*) from gitops_meta.audits")[0][0]
    views_v1 = env_views(ws)

    # a new check on b (no SQL change): same fingerprints, one check to run on the existing build
    repo.replace(
        "project.yml",
        "    sql: select id, v * 2 as v2 from a\n",
        "    sql: select id, v * 2 as v2 from a\n    checks: [not_empty, {row_count: {min: 3}}]\n",
    )
    c2 = repo.commit("more checks")
    plan = ws.plan(c2, ws.environment("main", ws.project(c2).settings))
    assert plan.to_build == []
    assert plan.to_audit == {"b": ["not_empty", "row_count"]}

    result = sync(ws, "main", instance)
    assert result.status == "published" and result.run_id is not None
    assert builds_count(ws) == n_builds
    new = q(ws, "select check_name, passed, build_id from gitops_meta.audits order by check_name")
    assert len(new) == n_audits + 2
    assert {(c, p, b) for c, p, b in new if c in ("not_empty", "row_count")} == {
        ("not_empty", True, views_v1["b"]),
        ("row_count", True, views_v1["b"]),
    }
    assert env_views(ws) == views_v1
    assert_serves(ws, c2)

    # a stricter definition of an existing check re-runs only that check, and can block
    repo.replace("project.yml", "v: {checks: [{ge: 0}]}", "v: {checks: [{ge: 20}]}")
    c3 = repo.commit("stricter")
    plan = ws.plan(c3, ws.environment("main", ws.project(c3).settings))
    assert plan.to_build == [] and plan.to_audit == {"a": ["v__ge"]}
    with pytest.raises(PublishBlocked, match="a.v__ge"):
        sync(ws, "main", instance)
    assert builds_count(ws) == n_builds
    assert_serves(ws, c2)


# --------------------------------------------------------------------------------------------------
# Python models

PY_MODEL = """
import polars as pl


def prices(items: pl.LazyFrame) -> pl.DataFrame:
    df = items.collect().sort("id")
    return pl.DataFrame({
        "id": df["id"].cast(pl.Int32),
        "price": [1.5, 2.25, 3.999],
        "day": ["2024-01-02", "2024-02-03", "2024-03-04"],
        "label": ["x", "y", "z"],
    })
"""

PY_PROJECT = {
    "gitops_data.yaml": "name: t\n",
    "seeds/items.csv": "id\n1\n2\n3\n",
    "models/prices.py": PY_MODEL,
    "project.yml": """
seeds:
  - name: items
    path: seeds/items.csv
models:
  - name: prices
    python: models/prices.py:prices
    columns:
      id: {type: bigint, unique: true}
      price: {type: "decimal(10,2)"}
      day: {type: date}
      label: {type: varchar}
  - name: total
    sql: select count(*) as n, sum(price) as s from prices
""",
}


def test_python_model_declared_types_and_failures(make_repo, warehouse, instance):
    from datetime import date
    from decimal import Decimal

    repo = make_repo(PY_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    c1 = repo.head()
    assert sync(ws, "main", instance).status == "published"
    types = list(column_types(ws, "analytics", "prices").items())
    if ws.dialect == "duckdb":
        assert types == [("id", "BIGINT"), ("price", "DECIMAL(10,2)"), ("day", "DATE"), ("label", "VARCHAR")]
    elif ws.dialect == "spark":
        assert types == [("id", "bigint"), ("price", "decimal(10,2)"), ("day", "date"), ("label", "string")]
    else:
        assert types == [("id", "bigint"), ("price", "numeric(10,2)"), ("day", "date"), ("label", "text")]
    assert q(ws, "select * from analytics.prices order by id") == [
        (1, Decimal("1.50"), date(2024, 1, 2), "x"),
        (2, Decimal("2.25"), date(2024, 2, 3), "y"),
        (3, Decimal("4.00"), date(2024, 3, 4), "z"),
    ]
    # the type checks the column types imply ran and passed
    assert q(ws, "select count(*) from gitops_meta.audits where check_name like '%__type' and passed") == [
        (4,)
    ]
    assert q(ws, "select n, s from analytics.total") == [(3, Decimal("7.75"))]
    served = env_views(ws)

    def failing(new_body: str, *expected: str) -> str:
        repo.write("models/prices.py", PY_MODEL.replace('    df = items.collect().sort("id")\n', new_body))
        sha = repo.commit("break prices")
        with pytest.raises(BuildError) as exc:
            sync(ws, "main", instance)
        msg = str(exc.value)
        assert exc.value.exit_code == 4
        assert "'prices'" in msg, msg
        for text in expected:
            assert text in msg, msg
        # nothing published: the previous commit is still served, untouched
        assert_serves(ws, c1)
        assert env_views(ws) == served
        assert q(ws, "select count(*) from analytics.prices") == [(3,)]
        assert q(ws, "select status, commit from gitops_meta.ref_status") == [("failed", sha)]
        assert q(ws, "select count(*) from gitops_meta.builds where commit = ?", [sha]) == [(0,)]
        return msg

    # the user's own traceback: their file, the line and function, and the code on that line
    failing(
        "    raise ValueError('boom in model')\n",
        "models/prices.py:6: python model 'prices' failed when called: ValueError: boom in model",
        "models/prices.py:6 in prices: raise ValueError('boom in model')",
    )
    failing("    return {'id': [1]}\n", "returned dict", "polars DataFrame")
    # a value that cannot be cast to the declared type fails the build, in the engine's words
    failing(
        '    df = items.collect().sort("id")\n'
        '    return df.with_columns(price=pl.lit(1.0), day=pl.lit("soon"), label=pl.lit("l"))\n',
        {"duckdb": "Conversion Error", "spark": "CAST_INVALID_INPUT"}.get(
            ws.dialect, "invalid input syntax for type date"
        ),
        "soon",
    )
    assert orphan_tables(ws) == []


# --------------------------------------------------------------------------------------------------
# SQL that parses but fails in DuckDB


def test_sql_error_at_build_time_keeps_previous_state(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    c1 = repo.head()
    sync(ws, "main", instance)
    served = env_views(ws)
    n_builds = builds_count(ws)

    # an unknown column is a validate error (the static column analysis); an unknown function is not
    repo.replace("project.yml", "v * 2 as v2 from a", "v * 2 as v2, no_such_column(v) as z from a")
    bad = repo.commit("typo in a function")
    with pytest.raises(BuildError) as exc:
        sync(ws, "main", instance)
    msg = str(exc.value)
    assert exc.value.exit_code == 4
    assert "'b'" in msg
    # PostgreSQL and DuckDB: "does not exist"; Spark: "[UNRESOLVED_ROUTINE] Cannot resolve routine"
    assert ("does not exist" in msg or "UNRESOLVED_ROUTINE" in msg) and "no_such_column" in msg.lower()

    assert_serves(ws, c1)
    assert env_views(ws) == served
    assert q(ws, "select * from analytics.b order by id") == ANALYTICS_B_V1
    assert q(ws, "select status, commit from gitops_meta.ref_status") == [("failed", bad)]
    assert "no_such_column" in q(ws, "select reason from gitops_meta.ref_status")[0][0].lower()
    assert builds_count(ws) == n_builds  # b failed, c (downstream) never ran, a and nums are reused
    assert orphan_tables(ws) == []

    # fixing it publishes
    repo.replace("project.yml", "v * 2 as v2, no_such_column(v) as z from a", "v * 2 as v2, 1 as one from a")
    fixed = repo.commit("fix")
    sync(ws, "main", instance)
    assert_serves(ws, fixed)
    assert q(ws, "select * from analytics.b order by id") == [(1, 20, 1), (2, 40, 1), (3, 60, 1)]


# --------------------------------------------------------------------------------------------------
# removed models


def test_removed_model_view_is_dropped(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    c_table = q(
        ws,
        """select b.table_name from gitops_meta.env_views v join gitops_meta.builds b using (build_id)
                       where v.model = 'c'""",
    )[0][0]
    n_builds = builds_count(ws)

    repo.replace("project.yml", "  - name: c\n    sql: select count(*) as n from b\n", "")
    c2 = repo.commit("drop c")
    plan = ws.plan(c2, ws.environment("main", ws.project(c2).settings))
    assert plan.removed == ("c",) and plan.to_build == []

    result = sync(ws, "main", instance)
    assert result.status == "published"
    assert result.publish.removed == ("c",) and result.publish.changed == ()
    assert "c" not in objects(ws, "analytics")
    assert set(env_views(ws)) == {"nums", "a", "b"}
    assert_serves(ws, c2)
    assert builds_count(ws) == n_builds
    # the build itself stays (rollback, gc decides)
    assert q(ws, f'select n from gitops_internal."{c_table}"') == [(3,)]
    models_changed = json.loads(
        q(ws, "select models_changed from gitops_meta.publishes order by published_at desc limit 1")[0][0]
    )
    assert models_changed == {"changed": [], "removed": ["c"], "rollback_of": None}


# --------------------------------------------------------------------------------------------------
# materialization metadata


def test_materializations_carry_build_metadata(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    c1 = repo.head()
    result = sync(ws, "main", instance)
    fps = ws.fingerprints(c1)
    tables = dict(
        q(
            ws,
            """select v.model, b.table_name from gitops_meta.env_views v
                           join gitops_meta.builds b using (build_id) where v.env = 'main'""",
        )
    )
    for model in ("nums", "a", "b", "c"):
        event = instance.get_latest_materialization_event(dg.AssetKey(["analytics", model]))
        assert event is not None and event.run_id == result.run_id, model
        md = event.asset_materialization.metadata
        assert md["commit"].value == c1
        assert md["warehouse"].value == ws.warehouse  # which warehouse it is about (no password here)
        assert instance.get_run_by_id(event.run_id).tags["gitops/warehouse"] == ws.warehouse
        assert md["fingerprint"].value == fps[model]
        assert md["physical_table"].value == f"gitops_internal.{tables[model]}"
        assert md["dagster/row_count"].value == q(ws, f"select count(*) from analytics.{model}")[0][0]
        columns = list(column_types(ws, "gitops_internal", tables[model]).items())
        schema = md["dagster/column_schema"].value
        assert [(c.name, c.type) for c in schema.columns] == columns, model

    # a second commit that changes b: only b and c get new materializations, for the new commit
    repo.replace("project.yml", "v * 2 as v2", "v * 3 as v2")
    c2 = repo.commit("triple")
    result2 = sync(ws, "main", instance)
    for model, commit in (("a", c1), ("b", c2), ("c", c2)):
        event = instance.get_latest_materialization_event(dg.AssetKey(["analytics", model]))
        assert event.asset_materialization.metadata["commit"].value == commit, model
        assert (event.run_id == result2.run_id) == (commit == c2)
    records = instance.fetch_materializations(dg.AssetKey(["analytics", "b"]), limit=10).records
    assert [r.asset_materialization.metadata["commit"].value for r in records] == [c2, c1]


# --------------------------------------------------------------------------------------------------
# refresh of models that read an external table

EXTERNAL_PROJECT = {
    "gitops_data.yaml": "name: t\n",
    "project.yml": """
sources:
  - name: ext
    table: ext_src.ext
models:
  - name: a
    sql: select id, v from ext
  - name: b
    sql: select sum(v) as s from a
""",
}


def test_sync_with_rebuild_publishes_the_refreshed_builds(make_repo, warehouse, instance):
    repo = make_repo(EXTERNAL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    if ws.dialect == "duckdb":
        Path(warehouse).parent.mkdir(parents=True, exist_ok=True)
    execute(warehouse, "create schema ext_src; create table ext_src.ext as select 1 as id, 10 as v")
    sync(ws, "main", instance)
    assert q(ws, "select s from analytics.b") == [(10,)]

    execute(warehouse, "insert into ext_src.ext values (2, 20)")
    result = sync(ws, "main", instance, rebuild=frozenset({"ext"}))
    assert result.run_id is not None
    fresh = dict(q(ws, "select model, build_id from gitops_meta.builds where run_id = ?", [result.run_id]))
    assert set(fresh) == {"a", "b"}  # the refresh did build both readers of ext
    assert result.status == "published"
    assert env_views(ws) == {"a": fresh["a"], "b": fresh["b"]}
    assert q(ws, "select s from analytics.b") == [(30,)]


# --------------------------------------------------------------------------------------------------
# the CLI


def _cli(tmp_path: Path, repo, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "cli_dagster_home"),
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    env.pop("GITOPS_DATA_REPO", None)
    env.pop("GITOPS_DATA_WAREHOUSE", None)
    (tmp_path / "cli_dagster_home").mkdir(exist_ok=True)
    exe = Path(sys.executable).parent / "gitops-data"
    return subprocess.run(
        [str(exe), "--repo", str(repo.path), "--warehouse", str(tmp_path / "cli.duckdb"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _no_traceback(p: subprocess.CompletedProcess) -> str:
    out = p.stdout + p.stderr
    assert "Traceback" not in out, out
    return out


def test_cli_sync_exit_codes(tmp_path, make_repo):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), str(tmp_path / "cli.duckdb"))

    p = _cli(tmp_path, repo, "sync")
    out = _no_traceback(p)
    assert p.returncode == 0, out
    assert "published main" in out
    c1 = repo.head()

    # a blocking check fails: exit 3, the failing check is named
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,-5\n3,30\n")
    repo.commit("negative")
    p = _cli(tmp_path, repo, "sync")
    out = _no_traceback(p)
    assert p.returncode == 3, out
    assert "a.v__ge" in out and "not published" in out

    # SQL that fails in DuckDB: exit 4, the model and DuckDB's message are named
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,20\n3,30\n")
    repo.replace("project.yml", "v * 2 as v2 from a", "v * 2 as v2, no_such_column(v) as z from a")
    repo.commit("bad function")
    p = _cli(tmp_path, repo, "sync")
    out = _no_traceback(p)
    assert p.returncode == 4, out
    assert "'b'" in out and "no_such_column" in out

    # an invalid project: exit 2, the problem is named, nothing is built
    repo.replace("project.yml", "from a\n", "from a_typo\n")
    repo.commit("typo")
    p = _cli(tmp_path, repo, "sync")
    out = _no_traceback(p)
    assert p.returncode == 2, out
    assert "a_typo" in out and "project.yml" in out

    assert served_commit(ws) == c1
    assert q(ws, "select * from analytics.b order by id") == ANALYTICS_B_V1
