"""The IO manager: a model step's output becomes its planned build in the internal schema.

Assets hand it their plan step; it writes exactly the build the step names (its id, physical table,
SQL and upstream tables were fixed by the plan), records it in the catalog, and attaches the build's
metadata. A step that reuses a build writes nothing and reports the build it serves.
"""

from __future__ import annotations

import time

import dagster as dg

from gitops_data import progress
from gitops_data.deployment.apply import ApplyResult
from gitops_data.deployment.core import Environment
from gitops_data.orchestration.assets import StepWork, asset_key
from gitops_data.orchestration.resources import GitopsResource
from gitops_data.plan import Action, BuildRecord, Mode, Plan, Status
from gitops_data.warehouse.execute import Built, execute_build


def build_metadata(plan: Plan, rec: BuildRecord, columns: dict[str, str], reused: bool) -> dict:
    meta = {
        "commit": dg.MetadataValue.text(plan.commit),
        "environment": dg.MetadataValue.text(plan.env),
        "fingerprint": dg.MetadataValue.text(rec.fingerprint),
        "build_id": dg.MetadataValue.text(rec.build_id),
        "physical_table": dg.MetadataValue.text(f"{plan.internal_schema}.{rec.table}"),
        "reused": dg.MetadataValue.bool(reused),
    }
    if columns:
        meta["dagster/column_schema"] = dg.TableSchema(
            columns=[dg.TableColumn(name=c, type=t) for c, t in columns.items()]
        )
    if rec.row_count is not None:
        meta["dagster/row_count"] = dg.MetadataValue.int(rec.row_count)
    if reused:
        meta["built_for_commit"] = dg.MetadataValue.text(rec.commit)
    return meta


def size_text(rec: BuildRecord) -> str:
    """How big a build is, for progress lines: its rows, or that it is a view (never counted)."""
    return "a view" if rec.row_count is None else f"{rec.row_count:,} rows"


def served_reused(result: ApplyResult) -> list[dg.AssetMaterialization]:
    """Materializations of the models a publish started serving from builds that already existed
    (zero copy: a branch reusing production's tables, a merge, a revert). Without them the UI shows
    those models as never materialized in that environment. In build order, and followed again by
    the models built downstream of them, so none looks older than its upstream ("stale")."""
    plan, record = result.plan, result.publish
    if result.status != Status.PUBLISHED or plan is None or record is None:
        return []
    env = Environment(plan.env, plan.schema)
    out = []
    changed = set(record.changed)
    reported: set[str] = set()
    for name, step in plan.models.items():
        b = step.build
        if name not in changed or b is None:
            continue
        if step.action == Action.REUSE:
            how = f"made for commit {b.commit[:10]} (reused, zero copy)"
        elif any(r.model in reported for r in step.reads):
            how = "made by this run; published after its reused upstreams"
        else:
            continue
        reported.add(name)
        out.append(
            dg.AssetMaterialization(
                asset_key=asset_key(env, name),
                description=f"serves build {b.build_id}, {how}",
                metadata=build_metadata(plan, b, {}, reused=step.action == Action.REUSE),
            )
        )
    return out


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Writes planned builds to the warehouse."""

    gitops: GitopsResource

    def handle_output(self, context: dg.OutputContext, obj: StepWork) -> None:
        t0 = time.perf_counter()
        plan, step = obj.plan, obj.step
        ws = self.gitops.workspace
        node = ws.project(plan.commit).nodes[step.name]
        with ws.catalog() as cat:
            if step.action == Action.BUILD:
                cat.engine.create_schema(plan.internal_schema)
                built = execute_build(cat, plan, step, node, context.run_id, ws.repo)
            else:
                built = Built(step.build, False)
            rec, written = built.build, built.written
            columns = built.columns or cat.engine.columns(plan.internal_schema, rec.table)
        context.add_output_metadata(build_metadata(plan, rec, columns, reused=not written))
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

    def load_input(self, context: dg.InputContext):
        raise NotImplementedError(
            "model steps read their upstream builds themselves, as their plan step says"
        )
