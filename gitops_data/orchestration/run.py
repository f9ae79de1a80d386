"""Executors of plans through Dagster: in-process runs (the CLI, tests) and run requests (sensors,
schedules). Both run the plan job (orchestration/plan_job.py) tagged with the plan id; it executes
exactly that plan, whatever asset graph the code location has loaded."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from gitops_data.capabilities import DUCKDB
from gitops_data.deployment.apply import Execution
from gitops_data.deployment.core import Deployment, Environment
from gitops_data.deployment.lifecycle import ApplyResult, PublishRecord, RunState
from gitops_data.engines.locations import redact
from gitops_data.errors import GitopsError
from gitops_data.orchestration import tags as T
from gitops_data.orchestration.assets import UI_PLAN_PREFIX, asset_key
from gitops_data.orchestration.materializations import served_checks, served_reused
from gitops_data.orchestration.plan_job import PLAN_JOB, PLAN_OP, plan_job
from gitops_data.orchestration.resources import GitopsResource, WarehouseResource
from gitops_data.plan import Plan, Trigger

_QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
_ACTIVE = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}


def resources(ws: Deployment) -> dict:
    gitops = GitopsResource(repo=ws.repo, warehouse=ws.warehouse)
    out: dict = {"gitops": gitops}
    if ws.capabilities is DUCKDB:  # dagster-duckdb's resource for users' own assets, under our lock
        out["warehouse"] = WarehouseResource(database=ws.warehouse)
    return out


def plan_request(plan: Plan, plan_id: str, trigger: Trigger, warehouse: str) -> dg.RunRequest:
    """The run of the plan job that executes `plan` in `warehouse`."""
    return dg.RunRequest(
        run_key=plan_id,
        job_name=PLAN_JOB,
        tags={
            T.PLAN: plan_id,
            T.COMMIT: plan.commit,
            T.ENV: plan.env,
            T.REF: plan.env,
            T.SCHEMA: plan.schema,
            T.TRIGGER: str(trigger),
            T.WAREHOUSE: redact(warehouse),
            "dagster/run_name": f"{plan.env}@{plan.commit[:10]} ({trigger})",
        },
    )


def run_state(instance: dg.DagsterInstance, plan_id: str) -> RunState | None:
    if plan_id.startswith(UI_PLAN_PREFIX):  # a run started from the UI: its plan is named after it
        run = instance.get_run_by_id(plan_id[len(UI_PLAN_PREFIX) :])
        runs: Sequence[dg.DagsterRun] = [run] if run is not None else []
    else:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={T.PLAN: plan_id}), limit=1)
    if not runs:
        return None
    status = runs[0].status
    return (
        "active" if status in _ACTIVE else "success" if status == dg.DagsterRunStatus.SUCCESS else "failure"
    )


def _root_cause(event) -> str:
    """The innermost error of a failed step, as a user reads it: ours and Dagster's `Failure` by
    their message alone (ours name the model, file and line), anything else (the user's SQL/Python
    error, a crash) as `Class: message`; after the step's name only when the step is an asset's
    (the plan job's one op is no name a user knows). Dagster's module paths never show."""
    err = getattr(event.event_specific_data, "error", None)
    while err is not None and err.cause is not None:
        err = err.cause
    if err is None:
        return "the run failed (see its logs in Dagster)"
    message = user_message(err.cls_name, err.message)
    return message if event.step_key == PLAN_OP else f"{event.step_key}: {message}"


def user_message(cls_name: str | None, message: str) -> str:
    """An error's message (`module.Class: text`, as Dagster stores it) for a user: our errors and
    Dagster's `Failure` (raised with our text) without their class, others as `Class: text`."""
    message = message.strip()
    head, sep, rest = message.partition(": ")
    qualified_name = bool(sep) and head.endswith(f".{cls_name}") and " " not in head
    if not qualified_name:
        return message
    if head.startswith(("gitops_data.", "dagster.")) and (
        head.startswith("gitops_data.errors.") or cls_name == "Failure"
    ):
        return rest.strip()
    return f"{cls_name}: {rest.strip()}"


def run_failure(instance: dg.DagsterInstance, run_id: str) -> str:
    """What a failed run's failed steps said (for alerts), in user terms (see `_root_cause`)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    events = [r.event_log_entry.dagster_event for r in records]
    causes = [_root_cause(e) for e in events if e is not None]
    return "; ".join(causes) or "the run failed (see its logs in Dagster)"


def _execute(
    job: dg.JobDefinition, request: dg.RunRequest, instance: dg.DagsterInstance, res: dict | None
) -> Execution:
    result = job.execute_in_process(
        instance=instance, resources=res, tags=request.tags, raise_on_error=False, run_config=_QUIET
    )
    if result.success:
        return Execution(True, result.run_id)
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = "; ".join(_root_cause(e) for e in failures) or "the run failed (see its logs in Dagster)"
    return Execution(True, result.run_id, error)


def record(instance: dg.DagsterInstance, result: ApplyResult, warehouse: str) -> None:
    """A publish made outside a run (reused builds: a merge, a revert, a branch serving production's
    tables), reported to Dagster as what the environment now serves."""
    for event in served_reused(result, instance, warehouse):
        instance.report_runless_asset_event(event)


def record_publish(instance: dg.DagsterInstance, ws: Deployment, record: PublishRecord, why: str) -> None:
    """A publish made without a plan (a rollback), reported to Dagster: what each changed model
    of the environment serves now, and the check results of those builds where Dagster shows
    another build's (rolling back to an audited commit leaves no model red)."""
    with ws.catalog() as cat:
        served = cat.published_builds(record.env).get(record.env, {})
    env = Environment(record.env, record.schema)
    for model in record.changed:
        b = served.get(model)
        if b is None:
            continue
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=asset_key(env, model),
                description=f"{record.schema} serves build {b.build_id} of commit {b.commit[:10]} ({why})",
                metadata={
                    "commit": dg.MetadataValue.text(record.commit),
                    "environment": dg.MetadataValue.text(record.env),
                    "build_id": dg.MetadataValue.text(b.build_id),
                    "built_for_commit": dg.MetadataValue.text(b.commit),
                    "publish_id": dg.MetadataValue.text(record.publish_id),
                    "reused": dg.MetadataValue.bool(True),
                },
            )
        )
    try:  # the plan of the served commit, made now, holds each served build's check results
        plan = ws.plan(record.commit, env)
    except GitopsError:
        return  # the commit no longer loads: its materializations above are all Dagster can be told
    for event in served_checks(instance, plan, frozenset(record.changed)):
        instance.report_runless_asset_event(event)


class InProcessExecutor:
    """Runs a plan as a real Dagster run (of the plan job) in this process (the CLI)."""

    synchronous = True

    def __init__(self, ws: Deployment, instance: dg.DagsterInstance):
        self.ws, self.instance = ws, instance

    def execute(self, plan: Plan, plan_id: str, trigger: Trigger) -> Execution:
        return _execute(
            plan_job,
            plan_request(plan, plan_id, trigger, self.ws.warehouse),
            self.instance,
            resources(self.ws),
        )

    def run_state(self, plan_id: str) -> RunState | None:
        return run_state(self.instance, plan_id)

    def record(self, result: ApplyResult) -> None:
        record(self.instance, result, self.ws.warehouse)


class RequestingExecutor:
    """Hands back a RunRequest of the plan job for the daemon (sensors, schedules)."""

    synchronous = False

    def __init__(self, ws: Deployment, instance: dg.DagsterInstance):
        self.ws, self.instance = ws, instance

    def execute(self, plan: Plan, plan_id: str, trigger: Trigger) -> Execution:
        return Execution(False, request=plan_request(plan, plan_id, trigger, self.ws.warehouse))

    def run_state(self, plan_id: str) -> RunState | None:
        return run_state(self.instance, plan_id)

    def record(self, result: ApplyResult) -> None:
        record(self.instance, result, self.ws.warehouse)


def execute_run_request(
    defs: dg.Definitions, request: dg.RunRequest, instance: dg.DagsterInstance
) -> Execution:
    """Run a sensor's or schedule's RunRequest in-process against `defs`, as the daemon would launch it."""
    return _execute(defs.resolve_job_def(request.job_name or PLAN_JOB), request, instance, None)
