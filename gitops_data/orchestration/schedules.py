"""`schedules:` from YAML -> Dagster schedules that rebuild a selection for fresh data: each tick
applies the schedule's ref with the selection forced to rebuild, as a run of the plan job (same
plan, audit and publish path as a commit; the Git-ref sensor publishes it once it is audited)."""

import dagster as dg

from gitops_data.deployment.apply import apply
from gitops_data.deployment.core import Deployment
from gitops_data.orchestration.plan_job import plan_job
from gitops_data.orchestration.run import RequestingExecutor
from gitops_data.plan import Trigger
from gitops_data.project.nodes import Project


def schedule_models(project: Project, selectors: list[str]) -> list[str]:
    """Selected built models plus their downstream (computed from the old data, so rebuilt too)."""
    chosen = project.downstream(set(project.select(selectors)))
    return [n for n, node in project.nodes.items() if n in chosen and node.built]


def _schedule(ws: Deployment, spec, models: list[str], ref: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=spec.name,
        cron_schedule=spec.cron,
        execution_timezone=spec.timezone,
        job=plan_job,
        description=spec.description or f"refresh {', '.join(models)} on {ref}",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def _tick(context: dg.ScheduleEvaluationContext):
        executor = RequestingExecutor(ws, context.instance)
        result = apply(ws, ref, executor, trigger=Trigger.SCHEDULE, rebuild=frozenset(models))
        if result.request is not None:
            return result.request
        return dg.SkipReason(f"{ref}: {result.status} {result.detail}".strip())

    return _tick


def yaml_schedules(ws: Deployment, project: Project, refs: set[str]) -> list[dg.ScheduleDefinition]:
    """One Dagster schedule per YAML schedule of the production project whose ref is tracked."""
    return [
        _schedule(
            ws, spec, schedule_models(project, spec.select), spec.ref or project.settings.production_ref
        )
        for spec in project.schedules
        if (spec.ref or project.settings.production_ref) in refs
    ]
