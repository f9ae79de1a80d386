"""The code location: Definitions for every tracked environment, pinned to the commits they show.

At INITIALIZATION (code server start or reload) we read the refs and pin, per environment, the
commit whose assets we show: the head if it is a valid project, else its newest valid first-parent
ancestor. The pins go into Dagster's reconstruction metadata, so run and step workers (which
re-import this module) rebuild exactly the same definitions even if a ref moved in between; and
every step builds the commit in its run's tags anyway.
"""

import json
import logging

import dagster as dg
from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext, DefinitionsLoadType

from gitops_data.deployment.core import Deployment, Environment
from gitops_data.errors import GitopsError
from gitops_data.orchestration.assets import environment_assets
from gitops_data.orchestration.head_state import current_pins, head_notes
from gitops_data.orchestration.maintenance import gc_job, gc_schedule
from gitops_data.orchestration.plan_job import plan_job
from gitops_data.orchestration.run import resources
from gitops_data.orchestration.schedules import yaml_schedules
from gitops_data.orchestration.sensors import drift_guard, failure_alerts, git_ref_sensor

log = logging.getLogger("gitops_data.definitions")
PIN_KEY = "gitops_data/pins"
NOTES_KEY = "gitops_data/notes"
LOCATION = "gitops_data"


def current_state(ws: Deployment) -> tuple[dict[str, str], dict[str, str]]:
    """(ref -> commit to show, ref -> note on its head) as the refs and the catalog say now."""
    ws = ws.fresh()
    pins = current_pins(ws)
    return pins, head_notes(ws, ws.tracked_heads(), pins)


def _pins(ws: Deployment) -> tuple[dict[str, str], dict[str, str]]:
    """(ref -> pinned commit, ref -> note on its head), as loaded at INITIALIZATION."""
    ctx = DefinitionsLoadContext.get()
    if ctx.load_type == DefinitionsLoadType.RECONSTRUCTION and PIN_KEY in ctx.reconstruction_metadata:
        meta = ctx.reconstruction_metadata
        return json.loads(meta[PIN_KEY]), json.loads(meta.get(NOTES_KEY, "{}"))
    pins, notes = current_state(ws)
    ctx.add_to_pending_reconstruction_metadata(PIN_KEY, json.dumps(pins))
    ctx.add_to_pending_reconstruction_metadata(NOTES_KEY, json.dumps(notes))
    return pins, notes


def build_definitions(
    ws: Deployment, pins: dict[str, str], location: str = LOCATION, notes: dict[str, str] | None = None
) -> dg.Definitions:
    """Assets, checks, sensors and schedules for the pinned commits (ref -> SHA); `notes` (ref -> why
    its head is not served) go on top of that environment's asset descriptions."""
    notes = notes or {}
    settings = ws.settings
    assets: list = []
    envs: dict[str, tuple[Environment, str]] = {}
    for ref, sha in sorted(pins.items()):
        try:
            project = ws.project(sha)
            env = ws.environment(ref)
        except GitopsError as exc:
            log.warning("skipping %s: %s", ref, exc)
            continue
        envs[ref] = (env, sha)
        assets.extend(environment_assets(ws, env, sha, project, notes.get(ref)))
    prod = envs.get(settings.production_ref)
    prod_project = ws.project(prod[1]) if prod else None
    return dg.Definitions(
        assets=assets,
        jobs=[gc_job, plan_job],
        schedules=[gc_schedule, *(yaml_schedules(ws, prod_project, set(envs)) if prod_project else [])],
        sensors=[
            git_ref_sensor(ws, dict(pins), prod_project, location, dict(notes)),
            failure_alerts(ws, prod_project),
            drift_guard(ws, prod_project),
        ],
        resources=resources(ws),
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Entry point for workspace.yaml; the data repo and warehouse come from GITOPS_DATA_REPO / _WAREHOUSE."""
    ws = Deployment.from_env()
    pins, notes = _pins(ws)
    return build_definitions(ws, pins, notes=notes)
