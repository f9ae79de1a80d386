"""`schedules:` from YAML -> Dagster schedules that rebuild a selection for fresh data: each tick
applies the schedule's ref with the selection forced to rebuild (same plan, audit and publish path)."""

import dagster as dg

from gitops_data.apply import apply
from gitops_data.orchestration.assets import asset_key
from gitops_data.orchestration.run import RequestingExecutor
from gitops_data.spec.project import Project
from gitops_data.workspace import Environment, Workspace


def schedule_models(project: Project, selectors: list[str]) -> list[str]:
    """Selected built models plus their downstream (computed from the old data, so rebuilt too)."""
    chosen = project.downstream(set(project.select(selectors)))
    return [n for n, node in project.nodes.items() if n in chosen and node.built]


def _schedule(
    ws: Workspace, spec, models: list[str], keys: list[dg.AssetKey], ref: str, loaded: dict[str, str]
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=spec.name,
        cron_schedule=spec.cron,
        execution_timezone=spec.timezone,
        target=dg.AssetSelection.assets(*keys),
        description=spec.description,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def _tick(context: dg.ScheduleEvaluationContext):
        result = apply(
            ws,
            ref,
            RequestingExecutor(context.instance, loaded),
            trigger="schedule",
            rebuild=frozenset(models),
        )
        if result.request is not None:
            return result.request
        return dg.SkipReason(f"{ref}: {result.status} {result.detail}".strip())

    return _tick


def yaml_schedules(
    ws: Workspace, project: Project, envs: dict[str, tuple[Environment, str]]
) -> list[dg.ScheduleDefinition]:
    """One Dagster schedule per YAML schedule whose environment is loaded (`envs`: ref -> (env, sha))."""
    out = []
    loaded = {ref: sha for ref, (_, sha) in envs.items()}
    for spec in project.schedules:
        ref = spec.ref or project.settings.production_ref
        if ref in envs:
            env, _ = envs[ref]
            models = schedule_models(project, spec.select)
            out.append(_schedule(ws, spec, models, [asset_key(env, m) for m in models], ref, loaded))
    return out
