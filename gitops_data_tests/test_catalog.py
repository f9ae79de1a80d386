"""The catalog on a real DuckDB file: builds, audits, plans and statuses round-trip; old catalogs migrate."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gitops_data.engines import open_warehouse
from gitops_data.plan import BuildRecord, PlanState, Status, Trigger
from gitops_data.warehouse.catalog import LATEST, MIGRATIONS, Catalog
from gitops_data_tests.test_gate import _plan


@pytest.fixture
def warehouse(any_warehouse) -> str:
    """Both engines (the conformance suite)."""
    return any_warehouse


def test_builds_audits_plans_and_statuses_round_trip(warehouse):
    plan = _plan()
    with open_warehouse(warehouse) as engine:
        cat = Catalog(engine, "gitops_meta")
        engine.create_schema("gitops_internal")
        engine.create_table_as("gitops_internal", plan.models["dim"].build.table, "select 1 as id")
        rec = BuildRecord(
            "d1",
            "dim",
            "f" * 64,
            plan.models["dim"].build.table,
            "c" * 40,
            "run1",
            1,
            inputs={},
            version="f" * 64,
        )
        cat.record_build(rec, "sql", "main", {"id": "INTEGER"})
        assert cat.build("d1").inputs == {} and cat.build("nope") is None
        # a recorded build whose table is gone does not exist for planning or gating
        assert cat.existing_builds("gitops_internal", ["d1", "f1"]) == {"d1"}

        result = SimpleNamespace(
            name="v__ge", hash="h1", passed=False, severity="error", failed_rows=2, sample=[-1]
        )
        cat.record_audits("f1", "run1", [result], 3)
        cat.record_audits(
            "f1", "run2", [SimpleNamespace(**{**vars(result), "passed": True, "failed_rows": 0})], 3
        )
        latest = cat.latest_audits(["f1"])["f1"][("v__ge", "h1")]
        assert (latest.passed, latest.failed_rows, latest.check_hash) == (True, 0, "h1")

        row = cat.claim("p0", plan, Trigger.BUILD, "host:1:2")
        assert (row.plan_id, row.trigger, row.state, row.owner) == (
            "p0",
            Trigger.BUILD,
            PlanState.OPEN,
            "host:1:2",
        )
        # one claim per (environment, commit): a second entry point gets the run that holds it
        assert cat.claim("p1", plan, Trigger.GIT, None).plan_id == "p0" and cat.plan_row("p1") is None
        assert cat.active_plan("main", plan.commit).plan_id == "p0"
        assert cat.release_plan("p0", "its process died") and not cat.release_plan("p0", "twice")
        assert cat.plan_row("p0").state == PlanState.RELEASED and cat.active_plan("main", plan.commit) is None
        assert cat.claim("p1", plan, Trigger.GIT, None).plan_id == "p1"  # free again
        assert cat.plan("p1") == plan and cat.active_plan_count() == 1
        assert cat.open_plan_builds() == {"d1", "f1"}  # gc keeps what a waiting plan reads or makes
        assert cat.start_plan("p1", "run1", "host:3:4") and not cat.start_plan("p0", "run2", "host:3:4")
        # one process concludes a plan
        assert cat.begin_conclusion("p1", "host:3:4") and not cat.begin_conclusion("p1", "host:5:6")
        cat.conclude_plan("p1", Status.BLOCKED, "v__ge failed", '{"x": 1}')
        row = cat.plan_row("p1")
        assert (row.state, row.outcome, row.reason, row.run_id) == (
            PlanState.CONCLUDED,
            Status.BLOCKED,
            "v__ge failed",
            "run1",
        )
        assert cat.active_plan("main", plan.commit) is None and cat.open_plan_builds() == set()

        cat.set_ref_status("main", "analytics", plan.commit, Status.BLOCKED, "why")
        st = cat.ref_statuses()["main"]
        assert st.status is Status.BLOCKED and st.status.final and st.reason == "why"


def test_a_catalog_of_an_earlier_version_is_migrated(warehouse):
    with open_warehouse(warehouse) as data:
        engine = data.catalog_store  # where the engine keeps its catalog (Spark: a store apart)
        engine.execute("create schema old_meta")
        engine.execute("""create table old_meta.builds (build_id varchar, model varchar, kind varchar,
            fingerprint varchar, commit varchar, env varchar, run_id varchar, table_name varchar,
            row_count bigint, columns json, created_at timestamp)""")
        engine.execute(
            "insert into old_meta.builds values ('b1', 'm', 'sql', 'fp', 'c', 'main', null, 't', 1, "
            "'{}', now())"
        )
        # plans as the unversioned catalog kept them: the status column mixed states and outcomes
        engine.execute("""create table old_meta.plans (plan_id varchar, env varchar, commit varchar,
            trigger varchar, body json, status varchar, reason varchar, created_at timestamp,
            updated_at timestamp)""")
        engine.execute(
            "insert into old_meta.plans values ('p1', 'main', 'c', 'git', '{}', 'blocked', 'why', now(), "
            "now()), ('p2', 'main', 'c', 'cli', '{}', 'open', '', now(), now())"
        )
        cat = Catalog(data, "old_meta")
        assert {"plans", "segments", "ref_status", "migrations"} <= set(engine.objects("old_meta"))
        assert cat.version() == LATEST and [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
        assert cat.build("b1").version is None and cat.build("b1").data_version == "fp"
        p1, p2 = cat.plan_row("p1"), cat.plan_row("p2")
        assert (p1.state, p1.outcome, p1.reason) == (PlanState.CONCLUDED, Status.BLOCKED, "why")
        assert (p2.state, p2.outcome, p2.trigger) == (PlanState.OPEN, None, Trigger.SYNC)
        assert cat.migrate() == []  # applied once
