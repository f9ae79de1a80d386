"""Execute the build and audit part of a plan as a real Dagster run (used by the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from gitops_data.orchestration import tags as T
from gitops_data.orchestration.assets import IO_MANAGER, asset_key, environment_assets
from gitops_data.orchestration.io_manager import WarehouseIOManager
from gitops_data.orchestration.resources import GitopsResource, WarehouseResource
from gitops_data.plan import Plan
from gitops_data.workspace import Environment, Workspace


def resources(ws: Workspace, bindings: dict[str, list[str]]) -> dict:
    gitops = GitopsResource(repo=ws.repo, warehouse=ws.warehouse)
    return {
        "gitops": gitops,
        IO_MANAGER: WarehouseIOManager(gitops=gitops, bindings=bindings),
        "warehouse": WarehouseResource(database=ws.warehouse),
    }


def run_tags(plan: Plan, trigger: str) -> dict[str, str]:
    return {T.COMMIT: plan.commit, T.ENV: plan.env, T.REF: plan.env, T.SCHEMA: plan.schema, T.TRIGGER: trigger}


def plan_selection(plan: Plan, env: Environment) -> tuple[list[dg.AssetKey], list[dg.AssetCheckKey]]:
    """Asset keys to materialize and check keys to (re-)run for a plan."""
    keys = [asset_key(env, m) for m in plan.to_build]
    checks = [dg.AssetCheckKey(asset_key(env, m), c) for m, cs in plan.to_audit.items() for c in cs]
    return keys, checks


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    error: str | None


def execute_plan(ws: Workspace, plan: Plan, instance: dg.DagsterInstance, trigger: str = "cli") -> RunOutcome:
    """Materialize what the plan builds and run the checks it needs, in-process, on `instance`."""
    env = Environment(plan.env, plan.schema)
    project = ws.project(plan.commit)
    keys, checks = plan_selection(plan, env)
    selection = dg.AssetSelection.assets(*keys) | dg.AssetSelection.checks(*checks)
    result = dg.materialize(
        environment_assets(ws, env, plan.commit, project),
        instance=instance,
        resources=resources(ws, {env.key_prefix: [env.name, plan.commit]}),
        tags=run_tags(plan, trigger),
        selection=selection,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    error = None
    if not result.success:
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        error = "; ".join(f"{e.step_key}: {_root_cause(e)}" for e in failures) or "run failed"
    return RunOutcome(result.run_id, result.success, error)


def _root_cause(event) -> str:
    """The innermost error message of a failed step (the user's SQL/Python error, not Dagster's wrapper)."""
    err = getattr(event.event_specific_data, "error", None)
    while err is not None and err.cause is not None:
        err = err.cause
    return err.message.strip() if err is not None else "failed"
