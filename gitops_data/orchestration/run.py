"""Execute builds and audits as real Dagster runs, in-process (the CLI, and tests driving sensors)."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from gitops_data.orchestration import tags as T
from gitops_data.orchestration.assets import IO_MANAGER, asset_key, environment_assets
from gitops_data.orchestration.io_manager import WarehouseIOManager
from gitops_data.orchestration.resources import GitopsResource, WarehouseResource
from gitops_data.plan import Plan
from gitops_data.workspace import Environment, Workspace

_QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    error: str | None


def resources(ws: Workspace, bindings: dict[str, list[str]]) -> dict:
    gitops = GitopsResource(repo=ws.repo, warehouse=ws.warehouse)
    return {
        "gitops": gitops,
        IO_MANAGER: WarehouseIOManager(gitops=gitops, bindings=bindings),
        "warehouse": WarehouseResource(database=ws.warehouse),
    }


def plan_request(plan: Plan, trigger: str) -> dg.RunRequest:
    """The run that builds what `plan` builds and runs the checks it still needs."""
    env = Environment(plan.env, plan.schema)
    return dg.RunRequest(
        run_key=f"{plan.env}@{plan.commit}",
        asset_selection=[asset_key(env, m) for m in plan.to_build],
        asset_check_keys=[dg.AssetCheckKey(asset_key(env, m), c) for m, cs in plan.to_audit.items() for c in cs] or None,
        tags={T.COMMIT: plan.commit, T.ENV: plan.env, T.REF: plan.env, T.SCHEMA: plan.schema, T.TRIGGER: trigger},
    )


def _root_cause(event) -> str:
    """The innermost error message of a failed step (the user's SQL/Python error, not Dagster's wrapper)."""
    err = getattr(event.event_specific_data, "error", None)
    while err is not None and err.cause is not None:
        err = err.cause
    return err.message.strip() if err is not None else "failed"


def _materialize(objs: list, res: dict, request: dg.RunRequest, instance: dg.DagsterInstance) -> RunOutcome:
    selection = dg.AssetSelection.assets(*(request.asset_selection or []))
    if request.asset_check_keys:
        selection = selection | dg.AssetSelection.checks(*request.asset_check_keys)
    result = dg.materialize(objs, instance=instance, resources=res, tags=request.tags, selection=selection,
                            raise_on_error=False, run_config=_QUIET)
    if result.success:
        return RunOutcome(result.run_id, True, None)
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return RunOutcome(result.run_id, False, "; ".join(f"{e.step_key}: {_root_cause(e)}" for e in failures) or "run failed")


def execute_plan(ws: Workspace, plan: Plan, instance: dg.DagsterInstance, trigger: str = "cli") -> RunOutcome:
    """Materialize what the plan builds and run the checks it needs, in-process, on `instance`."""
    env = Environment(plan.env, plan.schema)
    objs = environment_assets(ws, env, plan.commit, ws.project(plan.commit))
    return _materialize(objs, resources(ws, {env.key_prefix: [env.name, plan.commit]}), plan_request(plan, trigger), instance)


def execute_run_request(defs: dg.Definitions, request: dg.RunRequest, instance: dg.DagsterInstance) -> RunOutcome:
    """Run a sensor's or schedule's RunRequest in-process against `defs`, as the daemon would launch it."""
    return _materialize([*defs.assets, *(defs.asset_checks or [])], dict(defs.resources), request, instance)
