"""`schedules:` from YAML -> Dagster schedules that rebuild a selection for fresh data (same WAP path)."""

import dagster as dg

from gitops_data.orchestration import tags as T
from gitops_data.orchestration.assets import asset_key
from gitops_data.spec.project import Project
from gitops_data.workspace import Environment


def schedule_models(project: Project, selectors: list[str]) -> list[str]:
    """Selected built models plus their downstream (computed from the old data, so rebuilt too)."""
    chosen = project.downstream(set(project.select(selectors)))
    return [n for n, node in project.nodes.items() if n in chosen and node.built]


def _schedule(spec, keys: list[dg.AssetKey], env: Environment, sha: str, ref: str) -> dg.ScheduleDefinition:
    @dg.schedule(name=spec.name, cron_schedule=spec.cron, execution_timezone=spec.timezone,
                 target=dg.AssetSelection.assets(*keys), description=spec.description,
                 default_status=dg.DefaultScheduleStatus.RUNNING)
    def _tick(context: dg.ScheduleEvaluationContext):
        return dg.RunRequest(
            asset_selection=keys,
            tags={T.COMMIT: sha, T.ENV: env.name, T.REF: ref, T.SCHEMA: env.schema, T.TRIGGER: "schedule"},
        )

    return _tick


def yaml_schedules(project: Project, envs: dict[str, tuple[Environment, str]]) -> list[dg.ScheduleDefinition]:
    """One Dagster schedule per YAML schedule whose environment is loaded (`envs`: ref -> (env, sha))."""
    out = []
    for spec in project.schedules:
        ref = spec.ref or project.settings.production_ref
        if ref in envs:
            env, sha = envs[ref]
            out.append(_schedule(spec, [asset_key(env, m) for m in schedule_models(project, spec.select)], env, sha, ref))
    return out
