"""Dagster sensors: the Git-ref sensor (apply every tracked ref), run-failure alerts, the drift guard."""

import json
import logging
import os

import dagster as dg
from dagster._core.execution.plan.objects import StepFailureData

from gitops_data.alerts import AlertEvent
from gitops_data.alerts import send as deliver_all
from gitops_data.deployment.apply import apply_all
from gitops_data.deployment.core import Deployment
from gitops_data.orchestration import tags as T
from gitops_data.orchestration.head_state import current_pins, head_notes
from gitops_data.orchestration.plan_job import plan_job
from gitops_data.orchestration.reload import request_reload
from gitops_data.orchestration.run import RequestingExecutor, run_failure
from gitops_data.plan import Status
from gitops_data.project.nodes import Project
from gitops_data.warehouse.drift import detect_drift

log = logging.getLogger("gitops_data.sensors")


def send(project: Project | None, ws: Deployment, events: list[AlertEvent]) -> None:
    if project is not None and project.alerts:
        deliver_all(project.alerts, events, project.settings.name, ws.state_dir)


def sensor_interval() -> int:
    """Seconds between two evaluations of the Git-ref sensor (GITOPS_DATA_SENSOR_INTERVAL, default 15)."""
    return int(os.environ.get("GITOPS_DATA_SENSOR_INTERVAL", "15"))


def git_ref_sensor(
    ws: Deployment,
    loaded: dict[str, str],
    prod_project: Project | None,
    location: str,
    loaded_notes: dict[str, str] | None = None,
) -> dg.SensorDefinition:
    """Polls the data repo's refs; requests plan runs, publishes, drops deleted branches' schemas.
    `loaded`: ref -> commit whose assets the code location shows, `loaded_notes`: the notes on heads
    it shows (invalid, blocked); only the UI's view depends on them."""
    loaded_notes = loaded_notes or {}

    @dg.sensor(
        name="git_refs",
        minimum_interval_seconds=sensor_interval(),
        jobs=[plan_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Follows the data repo's branches: build, audit and publish each new commit.",
    )
    def _git_refs(context: dg.SensorEvaluationContext):
        dep = ws.fresh()  # settings as the production head says now
        heads = dep.tracked_heads()
        cursor = json.loads(context.cursor) if context.cursor else {}
        with dep.catalog() as cat:
            open_plans = cat.active_plan_count()
        if heads == cursor.get("heads") and not cursor.get("pending") and not open_plans:
            return dg.SkipReason(f"no new commits on {len(heads)} ref(s)")
        outcomes = apply_all(dep, heads, RequestingExecutor(dep, context.instance))
        requests = [o.request for o in outcomes if o.request is not None]
        lines = [
            f"{o.ref}@{(o.commit or '')[:10]}: {o.status}"
            + (f" ({' '.join(o.detail.split())[:500]})" if o.detail else "")
            for o in outcomes
            if o.status != Status.UP_TO_DATE
        ]
        for line in lines:
            context.log.info(line)
        reloaded_for = cursor.get("reloaded_for")
        shown = current_pins(dep)  # what a reload would show: the words match `status`
        notes = head_notes(dep, heads, shown)
        state = {"heads": heads, "notes": notes}
        stale = shown != loaded or notes != loaded_notes
        if stale and state != reloaded_for:
            reloaded_for = state  # once per state of the heads; a failure is a warning, never a stall
            problem = request_reload(location)
            if problem:
                context.log.warning(problem)
        pending = sorted(o.ref for o in outcomes if o.status in (Status.BUILDING, Status.SUPERSEDED))
        new_cursor = json.dumps({"heads": heads, "pending": pending, "reloaded_for": reloaded_for})
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=new_cursor)
        context.update_cursor(new_cursor)
        return dg.SkipReason("; ".join(lines) or f"all {len(heads)} environment(s) up to date")

    return _git_refs


def only_blocked_by_checks(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether every failed step of a run failed because a blocking check failed (Dagster reports
    that as a step failure; for us it is a `blocked` commit, alerted as such, not a broken run)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    errors = []
    for r in records:
        event = r.event_log_entry.dagster_event
        data = event.event_specific_data if event is not None else None
        errors.append(data.error if isinstance(data, StepFailureData) else None)
    return bool(errors) and all(
        e is not None and e.cls_name == "DagsterAssetCheckFailedError" for e in errors
    )


def failure_alerts(ws: Deployment, prod_project: Project | None) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name="alert_run_failures", default_status=dg.DefaultSensorStatus.RUNNING)
    def _failed(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        if only_blocked_by_checks(context.instance, run.run_id):
            return
        send(
            prod_project,
            ws,
            [
                AlertEvent(
                    "run_failed",
                    run.tags.get(T.ENV, "?"),
                    run.tags.get(T.COMMIT),
                    f"run {run.run_id} failed: {run_failure(context.instance, run.run_id)}",
                    {"run_id": run.run_id},
                )
            ],
        )

    return _failed


def drift_guard(ws: Deployment, prod_project: Project | None, interval: int = 60) -> dg.SensorDefinition:
    """Reports changes made to the warehouse outside Git (and alerts once per new finding)."""

    @dg.sensor(
        name="drift_guard",
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Detects objects and data changed outside Git; `gitops-data repair` fixes them.",
    )
    def _drift(context: dg.SensorEvaluationContext):
        dep = ws.fresh()
        with dep.catalog() as cat:
            found = detect_drift(cat, dep.settings.internal_schema)
        if not found:
            context.update_cursor("")
            return dg.SkipReason("no drift: the warehouse matches what was published")
        summary = "; ".join(str(d) for d in found)
        if context.cursor != summary:
            context.update_cursor(summary)
            for d in found:
                context.log.warning(f"drift: {d}")
            send(
                prod_project,
                ws,
                [AlertEvent("drift", d.env, None, str(d), {"kind": d.kind, "object": d.name}) for d in found],
            )
        return dg.SkipReason(f"{len(found)} drift(s): {summary[:1500]}")

    return _drift
