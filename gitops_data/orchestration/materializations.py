"""What Dagster is told about builds: their materialization metadata, what a publish serves that
Dagster does not show yet, and the step of a UI run (it writes exactly the build its plan step
names, with the scheduler's execute_build; no IO manager builds as a side effect).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import dagster as dg

from gitops_data import progress
from gitops_data.deployment.apply import conclude_if_complete
from gitops_data.deployment.core import Deployment, Environment
from gitops_data.deployment.lifecycle import ApplyResult
from gitops_data.engines.locations import redact
from gitops_data.orchestration import tags as T
from gitops_data.orchestration.assets import UI_PLAN_PREFIX, asset_key
from gitops_data.orchestration.lineage import column_schema, lineage_metadata
from gitops_data.plan import Action, BuildRecord, CheckState, Mode, ModelStep, Plan, Status
from gitops_data.warehouse.execute import Built, execute_build

if TYPE_CHECKING:
    from dagster._core.definitions.metadata import RawMetadataValue


def build_metadata(
    plan: Plan, rec: BuildRecord, columns: dict[str, str], reused: bool, warehouse: str
) -> dict[str, RawMetadataValue]:
    """A build's materialization metadata; `warehouse` is the location it lives in (see redact)."""
    meta: dict[str, RawMetadataValue] = {
        "warehouse": dg.MetadataValue.text(redact(warehouse)),
        "commit": dg.MetadataValue.text(plan.commit),
        "environment": dg.MetadataValue.text(plan.env),
        "fingerprint": dg.MetadataValue.text(rec.fingerprint),
        "build_id": dg.MetadataValue.text(rec.build_id),
        "physical_table": dg.MetadataValue.text(f"{plan.internal_schema}.{rec.table}"),
        "reused": dg.MetadataValue.bool(reused),
    }
    step = plan.models.get(rec.model)
    lineage = step.lineage if step is not None else ()
    if columns:
        meta["dagster/column_schema"] = column_schema(columns, lineage)
    if lineage:
        meta.update(lineage_metadata(Environment(plan.env, plan.schema), lineage))
    if rec.row_count is not None:
        meta["dagster/row_count"] = dg.MetadataValue.int(rec.row_count)
    if reused:
        meta["built_for_commit"] = dg.MetadataValue.text(rec.commit)
    return meta


def size_text(rec: BuildRecord) -> str:
    """How big a build is, for progress lines: its rows, or that it is a view (never counted)."""
    return "a view" if rec.row_count is None else f"{rec.row_count:,} rows"


def _meta_text(metadata: Mapping, name: str) -> str | None:
    value = metadata.get(name)
    return getattr(value, "value", value) if value is not None else None


def _shown(instance: dg.DagsterInstance, plan: Plan) -> tuple[dict, dict]:
    """(asset key -> build id of its latest materialization, check key -> (build id, passed) of its
    latest evaluation), for the environment's models, as Dagster shows them now."""
    env = Environment(plan.env, plan.schema)
    keys = [asset_key(env, n) for n, m in plan.models.items() if m.build is not None]
    built: dict[dg.AssetKey, str | None] = {}
    for key, entry in instance.get_latest_materialization_events(keys).items():
        mat = entry.asset_materialization if entry is not None else None
        built[key] = _meta_text(mat.metadata, "build_id") if mat is not None else None
    check_keys = [
        dg.AssetCheckKey(asset_key(env, n), c.name) for n, m in plan.models.items() for c in m.checks
    ]
    checks: dict[dg.AssetCheckKey, tuple[str | None, bool | None]] = {}
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    for ck, rec in latest.items():
        ev = rec.event.dagster_event.event_specific_data if rec.event and rec.event.dagster_event else None
        if isinstance(ev, dg.AssetCheckEvaluation):
            checks[ck] = (_meta_text(ev.metadata, "build_id"), ev.passed)
    return built, checks


def served_reused(
    result: ApplyResult, instance: dg.DagsterInstance, warehouse: str
) -> list[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """What a publish serves that Dagster does not show yet: a materialization per model whose
    served build is not its latest materialization (reused, zero copy: a branch serving production's
    tables, a merge, a revert; or a blocked commit's build shown since), and the served build's check
    results where the latest evaluation is of another build (so production does not stay red after
    a blocked commit is reverted). In build order, and followed again by the models built downstream
    of them, so none looks older than its upstream ("stale")."""
    plan, record = result.plan, result.publish
    if result.status != Status.PUBLISHED or plan is None or record is None:
        return []
    if all(step.action != Action.REUSE for step in plan.models.values()):
        return []  # every build is this run's, already shown: Dagster need not be asked
    env = Environment(plan.env, plan.schema)
    built, checks = _shown(instance, plan)
    out: list[dg.AssetMaterialization | dg.AssetCheckEvaluation] = []
    reported: set[str] = set()
    for name, step in plan.models.items():
        b = step.build
        if b is None:
            continue
        key = asset_key(env, name)
        if step.action == Action.REUSE:
            how = f"made for commit {b.commit[:10]} (reused, zero copy)"
            stale = built.get(key) != b.build_id
        else:
            how = "made by this run; published after its reused upstreams"
            stale = any(r.model in reported for r in step.reads)
        if stale:
            reported.add(name)
            out.append(
                dg.AssetMaterialization(
                    asset_key=key,
                    description=f"{plan.schema} serves build {b.build_id} since {plan.commit[:10]}, {how}",
                    metadata=build_metadata(
                        plan, b, {}, reused=step.action == Action.REUSE, warehouse=warehouse
                    ),
                )
            )
        if step.action == Action.REUSE:
            out.extend(_served_checks(plan, step, key, checks))
    return out


def served_checks(
    instance: dg.DagsterInstance, plan: Plan, models: frozenset[str]
) -> list[dg.AssetCheckEvaluation]:
    """The check results of the builds `plan` reuses for `models`, where Dagster shows another
    build's (or none)."""
    env = Environment(plan.env, plan.schema)
    _, shown = _shown(instance, plan)
    out: list[dg.AssetCheckEvaluation] = []
    for name in models:
        step = plan.models.get(name)
        if step is not None and step.action == Action.REUSE:
            out.extend(_served_checks(plan, step, asset_key(env, name), shown))
    return out


def _served_checks(plan: Plan, step, key: dg.AssetKey, shown: dict) -> list[dg.AssetCheckEvaluation]:
    """The served build's check results where Dagster shows another build's (or none)."""
    b = step.build
    out = []
    for c in step.checks:
        passed = c.state == CheckState.PASSED
        if c.state == CheckState.PENDING or shown.get(dg.AssetCheckKey(key, c.name)) == (b.build_id, passed):
            continue
        out.append(
            dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=c.name,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR if c.check.blocking else dg.AssetCheckSeverity.WARN,
                description=f"as audited on build {b.build_id}, which {plan.schema} serves since "
                f"{plan.commit[:10]}" + ("" if passed else f": {c.failed_rows} row(s) fail"),
                metadata={
                    "build_id": dg.MetadataValue.text(b.build_id),
                    "commit": dg.MetadataValue.text(plan.commit),
                    "failed_rows": dg.MetadataValue.int(int(c.failed_rows or 0)),
                },
            )
        )
    return out


def write_step(ws: Deployment, plan: Plan, step: ModelStep, run_id: str) -> dict[str, RawMetadataValue]:
    """Execute one model step of a run started from the UI, as the plan job's scheduler does (the
    same execute_build), and return its materialization's metadata."""
    t0 = time.perf_counter()
    node = ws.project(plan.commit).nodes[step.name]
    with ws.catalog() as cat:
        if step.action == Action.BUILD:
            cat.engine.create_schema(plan.internal_schema)
            built = execute_build(cat, plan, step, node, run_id, ws.repo)
        else:
            assert step.build is not None  # a reused build
            built = Built(step.build, False)
        rec, written = built.build, built.written
        columns = built.columns or cat.engine.columns(plan.internal_schema, rec.table)
    how = ""
    if step.mode == Mode.ALIAS and step.base is not None:
        how = f", the data of build {step.base.build_id} (no copy)"
    elif step.base is not None and rec.row_count is not None:
        added = rec.row_count - (step.base.row_count or 0)
        how = f", {added:+,} on build {step.base.build_id} (new segment)"
    progress.emit(
        "built" if written else "reused",
        step.name,
        f"{size_text(rec)}{how} -> {rec.table} ({time.perf_counter() - t0:.2f}s)",
    )
    return build_metadata(plan, rec, columns, reused=not written, warehouse=ws.warehouse)


def conclude_ui_run(context, ws: Deployment) -> None:
    """At the end of each step of a run started from the UI: the step that completes the run's plan
    concludes it (gate, publish, the outcome tag, what the publish serves), as the plan job does."""
    run = context.run
    if T.PLAN in run.tags:  # a run of the plan job concludes its plan itself
        return
    result = conclude_if_complete(ws, f"{UI_PLAN_PREFIX}{run.run_id}", run.run_id)
    if result is None:
        return
    context.log.info(f"{result.env.name}@{(result.commit or '')[:10]}: {result.status}: {result.detail}")
    context.instance.add_run_tags(run.run_id, {T.OUTCOME: result.outcome})
    for event in served_reused(result, context.instance, ws.warehouse):
        context.instance.report_runless_asset_event(event)
