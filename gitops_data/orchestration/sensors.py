"""Dagster sensors: the Git-ref sensor (reconcile), publishing after scheduled runs, run-failure alerts."""

import json
import logging
import os

import dagster as dg

from gitops_data.alerts import AlertEvent, deliver
from gitops_data.apply import ApplyResult, apply, apply_all
from gitops_data.orchestration import tags as T
from gitops_data.orchestration.run import RequestingExecutor
from gitops_data.plan import Status
from gitops_data.spec.project import Project
from gitops_data.warehouse.drift import detect_drift
from gitops_data.workspace import Workspace

log = logging.getLogger("gitops_data.sensors")


def outcome_alerts(o: ApplyResult) -> list[AlertEvent]:
    """Alert events an apply result raises."""
    events = []
    if o.status == Status.PUBLISHED:
        events.append(
            AlertEvent(
                "published",
                o.env.name,
                o.commit,
                f"{o.env.schema} now serves {o.commit[:10]}: {o.detail}",
                {"changed": list(o.publish.changed) if o.publish else []},
            )
        )
    if o.status == Status.BLOCKED:
        events.append(AlertEvent("blocked", o.env.name, o.commit, o.detail))
    failed = o.failures + o.warnings
    if failed:
        events.append(
            AlertEvent(
                "check_failed",
                o.env.name,
                o.commit,
                f"{len(failed)} check(s) failed",
                {"checks": [{"model": m, "check": c, "failed_rows": n} for m, c, n in failed]},
            )
        )
    return events


def send(project: Project | None, ws: Workspace, events: list[AlertEvent]) -> None:
    if project is None or not project.alerts:
        return
    base = os.path.dirname(ws.warehouse)
    for event in events:
        for problem in deliver(project.alerts, event, project.settings.name, base):
            log.warning(problem)


def request_reload(location: str) -> str:
    """Ask the webserver to reload this code location, so the asset graph follows the refs."""
    target = os.environ.get("GITOPS_DATA_DAGSTER_WEBSERVER", "localhost:3000")
    if target.lower() in ("", "off", "none"):
        return "reload disabled (GITOPS_DATA_DAGSTER_WEBSERVER=off)"
    host, _, port = target.rpartition(":")
    try:
        from dagster_graphql import DagsterGraphQLClient

        DagsterGraphQLClient(host or "localhost", port_number=int(port)).reload_repository_location(location)
        return f"asked {target} to reload {location}"
    except Exception as exc:  # the webserver may be down; next tick retries
        return f"could not reload {location} via {target}: {exc}"


def git_ref_sensor(
    ws: Workspace, loaded: dict[str, str], prod_project: Project | None, location: str, interval: int = 15
) -> dg.SensorDefinition:
    """Polls the data repo's refs; requests runs, publishes, drops deleted branches' schemas."""

    @dg.sensor(
        name="git_refs",
        minimum_interval_seconds=interval,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Follows the data repo's branches: build, audit and publish each new commit.",
    )
    def _git_refs(context: dg.SensorEvaluationContext):
        settings = ws.production_settings()
        heads = ws.tracked_heads(settings)
        cursor = json.loads(context.cursor) if context.cursor else {}
        if heads == cursor.get("heads") and not cursor.get("pending"):
            return dg.SkipReason(f"no new commits on {len(heads)} ref(s)")
        outcomes = apply_all(ws, heads, RequestingExecutor(context.instance, loaded), settings)
        requests = [o.request for o in outcomes if o.request is not None]
        lines = [
            f"{o.ref}@{(o.commit or '')[:10]}: {o.status}"
            + (f" ({' '.join(o.detail.split())[:500]})" if o.detail else "")
            for o in outcomes
            if o.status != Status.UP_TO_DATE
        ]
        for line in lines:
            context.log.info(line)
        if any(o.status == Status.RELOAD for o in outcomes):
            lines.append(request_reload(location))
        send(prod_project, ws, [e for o in outcomes for e in outcome_alerts(o)])
        pending = sorted(
            o.ref for o in outcomes if o.status in (Status.BUILDING, Status.RELOAD, Status.SUPERSEDED)
        )
        new_cursor = json.dumps({"heads": heads, "pending": pending})
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=new_cursor)
        context.update_cursor(new_cursor)
        return dg.SkipReason("; ".join(lines) or f"all {len(heads)} environment(s) up to date")

    return _git_refs


def refresh_publisher(ws: Workspace, prod_project: Project | None) -> dg.RunStatusSensorDefinition:
    """When a scheduled run ends, apply its environment again: that gates and publishes its plan."""

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="publish_scheduled_runs",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _publish(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        if run.tags.get(T.TRIGGER) != "schedule":
            return dg.SkipReason("not a scheduled run")
        o = apply(
            ws, run.tags[T.ENV], RequestingExecutor(context.instance), trigger="schedule", retry_final=False
        )
        context.log.info(f"{o.ref}@{(o.commit or '')[:10]}: {o.status} {o.detail}")
        send(prod_project, ws, outcome_alerts(o))
        return dg.SkipReason(f"{o.status}: {o.detail}")

    return _publish


def only_blocked_by_checks(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether every failed step of a run failed because a blocking check failed (Dagster reports
    that as a step failure; for us it is a `blocked` commit, alerted as such, not a broken run)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    errors = [r.event_log_entry.dagster_event.event_specific_data.error for r in records]
    return bool(errors) and all(
        e is not None and e.cls_name == "DagsterAssetCheckFailedError" for e in errors
    )


def failure_alerts(ws: Workspace, prod_project: Project | None) -> dg.RunStatusSensorDefinition:
    @dg.run_failure_sensor(name="alert_run_failures", default_status=dg.DefaultSensorStatus.RUNNING)
    def _failed(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        if run.tags.get(T.TRIGGER) == "schedule":  # conclude its plan (blocked or failed) like a success
            o = apply(
                ws,
                run.tags[T.ENV],
                RequestingExecutor(context.instance),
                trigger="schedule",
                retry_final=False,
            )
            send(prod_project, ws, outcome_alerts(o))
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
                    f"run {run.run_id} failed: {context.failure_event.message or ''}",
                    {"run_id": run.run_id},
                )
            ],
        )

    return _failed


def drift_guard(ws: Workspace, prod_project: Project | None, interval: int = 60) -> dg.SensorDefinition:
    """Reports changes made to the warehouse outside Git (and alerts once per new finding)."""

    @dg.sensor(
        name="drift_guard",
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Detects objects and data changed outside Git; `gitops-data repair` fixes them.",
    )
    def _drift(context: dg.SensorEvaluationContext):
        settings = ws.production_settings()
        with ws.catalog(settings.meta_schema) as cat:
            found = detect_drift(cat, settings.internal_schema)
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
