"""Execute one plan step exactly as planned: write its build, or run its checks. Nothing here
decides what to build, which upstream to read or which build a check compares against: the step
says so. Re-executing a step whose build exists is a no-op (Dagster re-execution of a run)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from gitops_data.audit.runner import CheckResult, not_run, run_check
from gitops_data.errors import BuildError, SqlError
from gitops_data.gitrepo import read_file
from gitops_data.naming import qualified
from gitops_data.plan import Action, BuildRecord, Mode, ModelStep, Plan
from gitops_data.project.dbt.housekeeping import fill_build_values, has_build_values
from gitops_data.project.dbt.late import LateRenderError, key_of, render_late, runner, split_table
from gitops_data.project.nodes import Node
from gitops_data.warehouse.builder import (
    BuildTarget,
    write_alias,
    write_build,
    write_file,
    write_frame,
    write_view,
)
from gitops_data.warehouse.catalog import Catalog
from gitops_data.warehouse.python_models import run_python_model
from gitops_data.warehouse.segments import Layout, incremental_select, snapshot_select, write_segmented


@dataclass(frozen=True)
class Built:
    """The build a step made, or found already made (a re-executed step)."""

    build: BuildRecord
    written: bool
    columns: dict[str, str] | None = None  # column -> type, when the build step knows them


def execute_build(
    catalog: Catalog,
    plan: Plan,
    step: ModelStep,
    node: Node,
    run_id: str | None,
    repo: str,
    existing: frozenset[str] | None = None,
) -> Built:
    """Write the build `step` plans for `node` (the internal schema exists: the caller made it).
    `existing`: the builds the caller knows exist (a plan run tracks its own), else the catalog is
    asked."""
    assert step.action == Action.BUILD and step.build is not None
    build = step.build
    if key_of(step.sql) is not None:  # a dbt model that queries the warehouse: rendered now
        step = replace(step, sql=_render_late(catalog, step, key_of(step.sql) or ""))
    if has_build_values(step.sql):  # dbt's invocation_id / run_started_at: this build's own
        step = replace(step, sql=fill_build_values(step.sql or "", build.build_id, datetime.now(UTC)))
    assert step.build is not None
    planned = [r for r in step.reads if r.planned and r.build_id]
    if existing is None or step.build.build_id in existing:
        done = catalog.build(step.build.build_id)
        if done is not None:
            return Built(done, False)
    if existing is None:
        ids = [r.build_id for r in planned if r.build_id]
        existing = frozenset(catalog.existing_builds(plan.internal_schema, ids))
    missing = [r.model for r in planned if r.build_id not in existing]
    if missing:
        raise BuildError(
            f"model {step.name!r} ({step.location}): upstream {', '.join(missing)} has no build for "
            f"commit {plan.commit[:10]} (its step failed or was not part of this run)"
        )
    target = BuildTarget(
        step.build,
        node.kind,
        plan.env,
        run_id,
        plan.internal_schema,
        step.location,
        pre_hooks=_filled(node.pre_hooks, step),
        post_hooks=_filled(node.post_hooks, step),
    )
    engine, internal = catalog.engine, plan.internal_schema
    types = node.declared_types
    if step.mode == Mode.ALIAS:
        assert step.base is not None
        rec, columns = write_alias(catalog, target, step.base)
    elif step.materialized == "view":
        reads = tuple(r.build_id for r in step.reads if r.build_id)
        rec, columns = write_view(catalog, replace(target, reads=reads), step.sql or "")
    elif node.segmented:
        base_view = qualified(internal, step.base.table) if step.base else None
        if node.snapshot is not None:
            select = snapshot_select(engine, step.sql or "", node.snapshot, base_view)
        else:
            assert node.incremental is not None  # segmented: a snapshot or an incremental model
            select = incremental_select(engine, step.sql or "", node.incremental, base_view)
        rec, columns = write_segmented(
            catalog, target, select, step.base, Layout.of(node.incremental, node.snapshot), types
        )
    elif node.kind == "sql":  # declared types of an SQL model are checked, not cast: the query owns them
        rec, columns = write_build(catalog, target, step.sql or "")
    elif node.kind == "python":
        inputs = {r.model: engine.frame(f"select * from {r.table}").lazy() for r in step.reads}
        rec, columns = write_frame(catalog, target, run_python_model(node, plan.commit, inputs), types)
    else:
        data = read_file(repo, plan.commit, node.data_path or "")
        rec, columns = write_file(
            catalog, target, data, node.data_format or "csv", types, node.data_path or ""
        )
    return Built(rec, True, columns)


def _filled(hooks: tuple[str, ...], step: ModelStep) -> tuple[str, ...]:
    """A model's hooks with dbt's invocation_id / run_started_at filled in for this build."""
    assert step.build is not None
    started = datetime.now(UTC)
    return tuple(fill_build_values(h, step.build.build_id, started) for h in hooks)


def _render_late(catalog: Catalog, step: ModelStep, key: str) -> str:
    """The query of a model rendered at build time, its statements answered by the builds the plan
    gives it (the same commit's), every read swapped for its build."""
    from gitops_data.sql import parse_query, rewrite

    engine = catalog.engine
    tables = {r.model.lower(): r.table for r in step.reads}
    run = runner(
        lambda sql: (engine.query_columns(sql), engine.fetchall(sql)),
        tables,
        engine.dialect,
        lambda table: engine.columns(*split_table(table)),
    )
    try:
        sql = render_late(key, run)
        return rewrite(parse_query(sql), tables, engine.dialect)
    except (LateRenderError, SqlError) as exc:
        raise BuildError(f"model {step.name!r} ({step.location}): rendering at build time: {exc}") from None


def execute_checks(
    catalog: Catalog,
    plan: Plan,
    step: ModelStep,
    names: list[str],
    run_id: str | None,
    made: Built | None = None,
) -> list[CheckResult]:
    """Run the checks `names` of `step` on its build, record the results (not the ones that could
    not run: they stay pending and run next time). `made`: the build the caller has just made for
    `step`, with its columns (then neither is looked up again)."""
    build = step.build
    engine, internal = catalog.engine, plan.internal_schema
    known = made is not None and build is not None and made.build.build_id == build.build_id
    if build is None or not (known or catalog.existing_builds(internal, [build.build_id])):
        raise BuildError(
            f"model {step.name!r} ({step.location}) has no build for commit {plan.commit[:10]} to audit"
        )
    columns = made.columns if made is not None and known and made.columns else None
    columns = columns or engine.columns(internal, build.table)
    wanted = set(names)
    results = []
    for pc in step.checks:
        if pc.name not in wanted:
            continue
        mine = {build.build_id} if known else set()
        targets = [r.build_id for r in pc.reads if r.build_id and r.build_id not in mine]
        present = (catalog.existing_builds(internal, targets) if targets else set()) | mine
        absent = [r.model for r in pc.reads if r.build_id and r.build_id not in present]
        if absent:
            results.append(
                not_run(
                    pc.check, pc.hash, f"{', '.join(absent)} has no build for commit {plan.commit[:10]} yet"
                )
            )
            continue
        reads = {r.model.lower(): r.table for r in pc.reads}
        results.append(run_check(engine, internal, build.table, pc.check, columns, reads, pc.hash))
    recorded = made.build if made is not None and known else catalog.build(build.build_id)
    catalog.record_audits(
        build.build_id,
        run_id,
        [r for r in results if not r.not_run],
        recorded.row_count if recorded else None,
    )
    return results
