"""Dagster assets and asset checks for one environment at one commit (no `from __future__ import
annotations` here: Dagster reads the type hints of asset functions at definition time).

Asset keys are `[<env schema>, <model>]` (e.g. `analytics/orders`, `analytics__feature_x/orders`),
grouped by environment. A step only executes its plan step: it finds the plan by the run's
`gitops/plan` tag (a run started from the UI gets a plan made once for it), and does what that
step says. A check that reads another model is its own asset check that depends on that model's
asset, so it runs after that model's build of the same plan.
"""

import functools
import json
from dataclasses import replace

import dagster as dg

from gitops_data import progress
from gitops_data.audit.runner import CheckResult
from gitops_data.deployment.apply import plan_for_run
from gitops_data.deployment.core import Deployment, Environment
from gitops_data.engines import warehouse_turn
from gitops_data.errors import GitopsError
from gitops_data.orchestration import tags as T
from gitops_data.orchestration.head_state import with_note
from gitops_data.orchestration.resources import GitopsResource
from gitops_data.plan import ModelStep, Plan
from gitops_data.project.checks import DeclaredCheck, declared_checks
from gitops_data.project.nodes import Node, Project
from gitops_data.warehouse.execute import execute_checks

UI_PLAN_PREFIX = "run-"  # the plan of a run started without a plan (from the UI) is "run-<run id>"
_KIND = {
    "sql": "sql",
    "python": "python",
    "seed": "csv",
    "source": "file",
    "table": "table",
    "snapshot": "snapshot",
}


def asset_key(env: Environment, model: str) -> dg.AssetKey:
    return dg.AssetKey([env.key_prefix, model])


def cross_model(node: Node, chk: DeclaredCheck) -> list[str]:
    """The other models a check of `node` reads (empty: it runs inside the model's own step)."""
    return sorted({r for r in chk.reads if r.lower() != node.name.lower()})


@functools.lru_cache(maxsize=32)
def _stored_plan(warehouse: str, meta: str, plan_id: str) -> Plan | None:
    from gitops_data.engines import open_warehouse
    from gitops_data.warehouse.catalog import Catalog

    with open_warehouse(warehouse) as engine:
        return Catalog(engine, meta).plan(plan_id)


def _valid_head(ws: Deployment, ref: str) -> str | None:
    try:
        sha = ws.resolve(ref)
        ws.project(sha)
        return sha
    except GitopsError:
        return None


def planned_step(
    context, ws: Deployment, env: Environment, default_commit: str, name: str
) -> tuple[Plan, ModelStep]:
    """The plan of this run and its step for `name`. A run without a plan tag (started from the UI)
    gets one plan, made for its environment's current head (the commit the location shows if the
    head is not valid) the first time one of its steps asks."""
    tags = context.run.tags
    sha = tags.get(T.COMMIT, default_commit)
    meta = ws.settings.meta_schema
    plan_id = tags.get(T.PLAN) or f"{UI_PLAN_PREFIX}{context.run.run_id}"
    plan = _stored_plan(ws.warehouse, meta, plan_id)
    if plan is None:
        _stored_plan.cache_clear()
        env = Environment(tags.get(T.ENV, env.name), env.schema)
        if T.COMMIT not in tags:
            sha = _valid_head(ws, env.name) or sha
        plan = plan_for_run(ws, plan_id, env, sha)
    step = plan.models.get(name)
    if step is None:
        raise dg.Failure(f"model {name!r} is not in the plan of commit {sha[:10]}; reload the code location")
    return plan, step


def check_event(r: CheckResult) -> str:
    return "check_" + ("passed" if r.passed else "not_run" if r.not_run else "failed")


def check_severity(r: CheckResult) -> dg.AssetCheckSeverity:
    """ERROR for a blocking check that ran; a warn check, or one that could not run yet, is WARN."""
    return (
        dg.AssetCheckSeverity.ERROR if r.severity == "error" and not r.not_run else dg.AssetCheckSeverity.WARN
    )


def check_metadata(plan: Plan, step: ModelStep, r: CheckResult) -> dict:
    """What the UI shows with a check result: failing rows, a sample, the build, commit and file."""
    build = step.build
    return {
        "failed_rows": dg.MetadataValue.int(int(r.failed_rows or 0)),
        "message": dg.MetadataValue.text(r.message),
        "sample": dg.MetadataValue.json(json.loads(json.dumps(r.sample, default=str))),
        "build_id": dg.MetadataValue.text(build.build_id if build else ""),
        "physical_table": dg.MetadataValue.text(f"{plan.internal_schema}.{build.table if build else ''}"),
        "commit": dg.MetadataValue.text(plan.commit),
        "model_file": dg.MetadataValue.text(step.location),
    }


def audit(context, ws: Deployment, env: Environment, plan: Plan, step: ModelStep, names: list[str]):
    """Run the checks `names` of a step and report each as an AssetCheckResult."""
    with ws.catalog() as cat:
        results = execute_checks(cat, plan, step, names, context.run.run_id)
    key = asset_key(env, step.name)
    for r in results:
        progress.emit(check_event(r), step.name, f"{r.name}: {r.message}")
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=r.name,
            passed=r.passed,
            severity=check_severity(r),
            description=r.message,
            metadata=check_metadata(plan, step, r),
        )
    known = {r.name for r in results}
    for n in names:
        if n not in known:
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=n,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "message": dg.MetadataValue.text(
                        f"check {n!r} is not declared at commit {plan.commit[:10]}"
                    )
                },
            )


def _model_asset(
    env: Environment, sha: str, node: Node, fingerprint: str, engine: str, deps: tuple[str, ...]
) -> list:
    """One step per model: build it (when selected), then run its own checks (when selected); plus
    one asset check per check that reads another model, after that model."""
    key = asset_key(env, node.name)
    metadata: dict[str, object] = {
        "gitops/kind": node.kind,
        "gitops/materialized": node.materialized,
        "gitops/file": f"{node.file}:{node.line}",
        "gitops/commit": sha,
    }
    if node.columns:
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[
                dg.TableColumn(c, spec.type or "?", description=spec.description)
                for c, spec in node.columns.items()
            ]
        )
    spec = dg.AssetSpec(
        key,
        deps=[asset_key(env, d) for d in deps],
        group_name=env.key_prefix,
        description=node.description,
        kinds={engine, "view" if node.materialized == "view" else _KIND[node.kind]},
        code_version=fingerprint,
        metadata=metadata,
        owners=[node.owner] if node.owner and "@" in node.owner else None,
        tags={t: "" for t in node.tags if t.replace("_", "").replace("-", "").isalnum()},
    )
    checks = declared_checks(node)
    own = [
        dg.AssetCheckSpec(c.name, asset=key, blocking=c.blocking, description=c.description)
        for c in checks
        if not cross_model(node, c)
    ]

    @dg.multi_asset(specs=[spec], check_specs=own, can_subset=True, name=f"{env.key_prefix}__{node.name}")
    def _step(context: dg.AssetExecutionContext, gitops: GitopsResource):
        ws = gitops.workspace
        with warehouse_turn(ws.warehouse, gives_way=False):  # one asset's step: short
            plan, step = planned_step(context, ws, env, sha, node.name)
            if key in context.selected_asset_keys:  # the build first, then its checks
                from gitops_data.orchestration.materializations import write_step

                yield dg.MaterializeResult(
                    asset_key=key, metadata=write_step(ws, plan, step, context.run.run_id)
                )
            selected = sorted(k.name for k in context.selected_asset_check_keys)
            if selected:
                yield from audit(context, ws, env, plan, step, selected)

    return [_step, *(_cross_check(env, sha, node, c) for c in checks if cross_model(node, c))]


def _cross_check(env: Environment, sha: str, node: Node, chk: DeclaredCheck) -> dg.AssetChecksDefinition:
    """A check that reads other models runs after them. It is not blocking in Dagster (its target
    may be downstream of the model, and blocking would make a cycle); publishing still waits for it."""
    key = asset_key(env, node.name)

    @dg.asset_check(
        asset=key,
        name=chk.name,
        description=chk.description,
        blocking=False,
        additional_deps=[asset_key(env, m) for m in cross_model(node, chk)],
    )
    def _check(context: dg.AssetCheckExecutionContext, gitops: GitopsResource):
        ws = gitops.workspace
        with warehouse_turn(ws.warehouse, gives_way=False):  # one asset's step: short
            plan, step = planned_step(context, ws, env, sha, node.name)
            return next(audit(context, ws, env, plan, step, [chk.name]))

    return _check


def _external_asset(env: Environment, node: Node, engine: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        asset_key(env, node.name),
        description=node.description or f"external table {node.table}",
        group_name=env.key_prefix,
        kinds={engine, "table"},
        metadata={"table": node.table},
    )


def environment_assets(
    ws: Deployment, env: Environment, sha: str, project: Project, note: str | None = None
) -> list:
    """All assets (with their checks) and external assets of one environment at one commit; `note`
    (why the branch head is not served: invalid, blocked, failed) heads every description."""
    fps = ws.fingerprints(sha)
    out: list = []
    for node in project.nodes.values():
        if note:
            node = replace(node, description=with_note(node.description, note))
        if node.kind == "table":
            out.append(_external_asset(env, node, ws.dialect))
            continue
        if node.ephemeral:  # no object: its downstream assets depend on what it reads
            continue
        out.extend(_model_asset(env, sha, node, fps[node.name], ws.dialect, project.physical_deps(node.name)))
    return out
