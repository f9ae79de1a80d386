"""Executors of plans through Dagster: in-process runs (the CLI, tests) and run requests (sensors,
schedules). Both tag the run with its plan id; the steps execute exactly that plan."""

from __future__ import annotations

import dagster as dg

from gitops_data.apply import Execution, RunState
from gitops_data.orchestration import tags as T
from gitops_data.orchestration.assets import IO_MANAGER, UI_PLAN_PREFIX, asset_key, environment_assets
from gitops_data.orchestration.io_manager import WarehouseIOManager
from gitops_data.orchestration.resources import GitopsResource, WarehouseResource
from gitops_data.plan import Plan
from gitops_data.workspace import Environment, Workspace

_QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
_ACTIVE = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}


def resources(ws: Workspace) -> dict:
    gitops = GitopsResource(repo=ws.repo, warehouse=ws.warehouse)
    return {
        "gitops": gitops,
        IO_MANAGER: WarehouseIOManager(gitops=gitops),
        "warehouse": WarehouseResource(database=ws.warehouse),
    }


def plan_request(plan: Plan, plan_id: str, trigger: str) -> dg.RunRequest:
    """The run that executes `plan`: its build steps and the checks it still needs."""
    env = Environment(plan.env, plan.schema)
    return dg.RunRequest(
        run_key=plan_id,
        asset_selection=[asset_key(env, m) for m in plan.to_build],
        asset_check_keys=[
            dg.AssetCheckKey(asset_key(env, m), c) for m, cs in plan.pending_checks.items() for c in cs
        ],
        tags={
            T.PLAN: plan_id,
            T.COMMIT: plan.commit,
            T.ENV: plan.env,
            T.REF: plan.env,
            T.SCHEMA: plan.schema,
            T.TRIGGER: trigger,
        },
    )


def run_state(instance: dg.DagsterInstance, plan_id: str) -> RunState | None:
    if plan_id.startswith(UI_PLAN_PREFIX):  # a run started from the UI: its plan is named after it
        run = instance.get_run_by_id(plan_id[len(UI_PLAN_PREFIX) :])
        runs = [run] if run is not None else []
    else:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={T.PLAN: plan_id}), limit=1)
    if not runs:
        return None
    status = runs[0].status
    return (
        "active" if status in _ACTIVE else "success" if status == dg.DagsterRunStatus.SUCCESS else "failure"
    )


def _root_cause(event) -> str:
    """The innermost error of a failed step: ours as they are (they name the model, file and line),
    anything else (the user's SQL/Python error, a crash) after the step's name."""
    err = getattr(event.event_specific_data, "error", None)
    while err is not None and err.cause is not None:
        err = err.cause
    if err is None:
        return f"{event.step_key}: failed"
    message = err.message.strip()
    ours = f"gitops_data.errors.{err.cls_name}: "
    return message.removeprefix(ours) if message.startswith(ours) else f"{event.step_key}: {message}"


def _materialize(objs: list, res: dict, request: dg.RunRequest, instance: dg.DagsterInstance) -> Execution:
    selection = dg.AssetSelection.assets(*(request.asset_selection or []))
    if request.asset_check_keys:
        selection = selection | dg.AssetSelection.checks(*request.asset_check_keys)
    result = dg.materialize(
        objs,
        instance=instance,
        resources=res,
        tags=request.tags,
        selection=selection,
        raise_on_error=False,
        run_config=_QUIET,
    )
    if result.success:
        return Execution(True, result.run_id)
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = "; ".join(_root_cause(e) for e in failures) or "run failed"
    return Execution(True, result.run_id, error)


class InProcessExecutor:
    """Runs a plan as a real Dagster run in this process (the CLI)."""

    synchronous = True

    def __init__(self, ws: Workspace, instance: dg.DagsterInstance):
        self.ws, self.instance = ws, instance

    def execute(self, plan: Plan, plan_id: str, trigger: str) -> Execution:
        env = Environment(plan.env, plan.schema)
        objs = environment_assets(self.ws, env, plan.commit, self.ws.project(plan.commit))
        return _materialize(objs, resources(self.ws), plan_request(plan, plan_id, trigger), self.instance)

    def run_state(self, plan_id: str) -> RunState | None:
        return run_state(self.instance, plan_id)


class RequestingExecutor:
    """Hands back a RunRequest for the daemon (sensors, schedules). `loaded`: ref -> commit the code
    location shows; a run is only requested for a commit whose assets it has."""

    synchronous = False

    def __init__(self, instance: dg.DagsterInstance, loaded: dict[str, str] | None = None):
        self.instance, self.loaded = instance, loaded

    def execute(self, plan: Plan, plan_id: str, trigger: str) -> Execution:
        if self.loaded is not None and self.loaded.get(plan.env) != plan.commit:
            return Execution(False, reload=True)
        return Execution(False, request=plan_request(plan, plan_id, trigger))

    def run_state(self, plan_id: str) -> RunState | None:
        return run_state(self.instance, plan_id)


def execute_run_request(
    defs: dg.Definitions, request: dg.RunRequest, instance: dg.DagsterInstance
) -> Execution:
    """Run a sensor's or schedule's RunRequest in-process against `defs`, as the daemon would launch it."""
    return _materialize([*defs.assets, *(defs.asset_checks or [])], dict(defs.resources), request, instance)
