"""Dagster sensors: the Git-ref sensor (reconcile), publishing after scheduled runs, run-failure alerts."""

import json
import logging
import os

import dagster as dg

from gitops_data.alerts import AlertEvent, deliver
from gitops_data.orchestration import tags as T
from gitops_data.orchestration.run import plan_request
from gitops_data.reconcile import Outcome, production_settings, publish_refresh, reconcile, tracked_heads
from gitops_data.spec.project import Project
from gitops_data.warehouse.connection import open_warehouse
from gitops_data.warehouse.drift import detect_drift
from gitops_data.workspace import Workspace

log = logging.getLogger("gitops_data.sensors")
_ACTIVE = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
           dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}


def run_states(instance: dg.DagsterInstance):
    def states(env: str, sha: str) -> list[str]:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={T.ENV: env, T.COMMIT: sha}), limit=20)
        return ["active" if r.status in _ACTIVE else ("success" if r.status == dg.DagsterRunStatus.SUCCESS else "failure")
                for r in runs]

    return states


def outcome_alerts(o: Outcome) -> list[AlertEvent]:
    """Alert events an outcome raises."""
    events = []
    if o.action == "published":
        events.append(AlertEvent("published", o.env.name, o.sha, f"{o.env.schema} now serves {o.sha[:10]}: {o.detail}",
                                 {"changed": list(o.publish.changed) if o.publish else []}))
    if o.action == "blocked":
        events.append(AlertEvent("blocked", o.env.name, o.sha, o.detail))
    failed = o.failures + o.warnings
    if failed:
        events.append(AlertEvent("check_failed", o.env.name, o.sha, f"{len(failed)} check(s) failed",
                                 {"checks": [{"model": m, "check": c, "failed_rows": n} for m, c, n in failed]}))
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


def git_ref_sensor(ws: Workspace, loaded: dict[str, str], prod_project: Project | None, location: str,
                   interval: int = 15) -> dg.SensorDefinition:
    """Polls the data repo's refs; requests runs, publishes, drops deleted branches' schemas."""

    @dg.sensor(name="git_refs", minimum_interval_seconds=interval, target=dg.AssetSelection.all(),
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Follows the data repo's branches: build, audit and publish each new commit.")
    def _git_refs(context: dg.SensorEvaluationContext):
        settings = production_settings(ws)
        heads = tracked_heads(ws, settings)
        cursor = json.loads(context.cursor) if context.cursor else {}
        if heads == cursor.get("heads") and not cursor.get("pending"):
            return dg.SkipReason(f"no new commits on {len(heads)} ref(s)")
        outcomes = reconcile(ws, heads, run_states(context.instance), loaded, settings)
        requests = [plan_request(o.plan, "git") for o in outcomes if o.action == "run"]
        lines = [f"{o.ref}@{(o.sha or '')[:10]}: {o.action}" + (f" ({' '.join(o.detail.split())[:500]})" if o.detail else "")
                 for o in outcomes if o.action != "up_to_date"]
        for line in lines:
            context.log.info(line)
        if any(o.action == "reload" for o in outcomes):
            lines.append(request_reload(location))
        send(prod_project, ws, [e for o in outcomes for e in outcome_alerts(o)])
        pending = sorted(o.ref for o in outcomes if o.action in ("run", "waiting", "reload", "superseded"))
        new_cursor = json.dumps({"heads": heads, "pending": pending})
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=new_cursor)
        context.update_cursor(new_cursor)
        return dg.SkipReason("; ".join(lines) or f"all {len(heads)} environment(s) up to date")

    return _git_refs


def refresh_publisher(ws: Workspace, prod_project: Project | None) -> dg.RunStatusSensorDefinition:
    """When a scheduled run succeeds, publish its fresh builds (if all blocking checks passed)."""

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="publish_scheduled_runs",
                          default_status=dg.DefaultSensorStatus.RUNNING)
    def _publish(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        if run.tags.get(T.TRIGGER) != "schedule":
            return dg.SkipReason("not a scheduled run")
        o = publish_refresh(ws, run.tags[T.ENV], run.tags[T.COMMIT], run.run_id)
        context.log.info(f"{o.ref}@{o.sha[:10]}: {o.action} {o.detail}")
        send(prod_project, ws, outcome_alerts(o))
        return dg.SkipReason(f"{o.action}: {o.detail}")

    return _publish


def only_blocked_by_checks(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether every failed step of a run failed because a blocking check failed (Dagster reports
    that as a step failure; for us it is a `blocked` commit, alerted as such, not a broken run)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    errors = [r.event_log_entry.dagster_event.event_specific_data.error for r in records]
    return bool(errors) and all(e is not None and e.cls_name == "DagsterAssetCheckFailedError" for e in errors)


def failure_alerts(ws: Workspace, prod_project: Project | None) -> dg.RunStatusSensorDefinition:
    @dg.run_failure_sensor(name="alert_run_failures", default_status=dg.DefaultSensorStatus.RUNNING)
    def _failed(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        if only_blocked_by_checks(context.instance, run.run_id):
            return
        send(prod_project, ws, [AlertEvent("run_failed", run.tags.get(T.ENV, "?"), run.tags.get(T.COMMIT),
                                           f"run {run.run_id} failed: {context.failure_event.message or ''}",
                                           {"run_id": run.run_id})])

    return _failed


def drift_guard(ws: Workspace, prod_project: Project | None, interval: int = 60) -> dg.SensorDefinition:
    """Reports changes made to the warehouse outside Git (and alerts once per new finding)."""

    @dg.sensor(name="drift_guard", minimum_interval_seconds=interval, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Detects objects and data changed outside Git; `gitops-data repair` fixes them.")
    def _drift(context: dg.SensorEvaluationContext):
        settings = production_settings(ws)
        with open_warehouse(ws.warehouse) as con:
            found = detect_drift(con, settings.meta_schema, settings.internal_schema)
        if not found:
            context.update_cursor("")
            return dg.SkipReason("no drift: the warehouse matches what was published")
        summary = "; ".join(str(d) for d in found)
        if context.cursor != summary:
            context.update_cursor(summary)
            for d in found:
                context.log.warning(f"drift: {d}")
            send(prod_project, ws, [AlertEvent("drift", d.env, None, str(d), {"kind": d.kind, "object": d.name})
                                    for d in found])
        return dg.SkipReason(f"{len(found)} drift(s): {summary[:1500]}")

    return _drift
