"""Make every tracked environment follow its Git ref: the decision logic behind the Git-ref sensor.

For each tracked ref whose head is not yet published: load and validate the project at the head,
plan, and either publish straight away (everything already built and audited: a merge or a
revert), ask for a run (builds or audits missing), wait (a run is under way), or record why it
cannot be published (invalid project, blocking checks failed, run failed). Environments whose
branch is gone are dropped. No Dagster import here: the sensor is a thin wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gitops_data import gitrepo
from gitops_data.errors import GitopsError, ProjectError, Superseded
from gitops_data.plan import Plan
from gitops_data.spec.loader import read_settings
from gitops_data.spec.schema import SETTINGS_FILE, Settings
from gitops_data.spec.tree import GitTree
from gitops_data.sync import publish_if_ready
from gitops_data.warehouse.catalog import ensure_catalog, ref_statuses
from gitops_data.warehouse.connection import open_warehouse
from gitops_data.warehouse.publish import PublishRecord, unpublish
from gitops_data.workspace import Environment, Workspace

# decided for this head: nothing to do until the branch moves
FINAL = ("invalid", "blocked", "failed", "rolled_back")


@dataclass
class Outcome:
    """What one tick decided for one ref."""

    ref: str
    env: Environment
    sha: str | None
    action: str  # up_to_date | published | run | waiting | reload | blocked | invalid | failed | dropped | superseded
    detail: str = ""
    plan: Plan | None = None
    publish: PublishRecord | None = None
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def production_settings(ws: Workspace, production_ref: str | None = None) -> Settings:
    """Settings from the production ref's head (defaults where unreadable)."""
    try:
        sha = ws.resolve(production_ref or "main")
    except GitopsError:
        sha = ws.resolve("HEAD")
    tree = GitTree(ws.repo, sha)
    if not tree.exists(SETTINGS_FILE):
        raise GitopsError(f"{ws.repo} is not a gitops-data repository ({SETTINGS_FILE} is missing at "
                          f"{sha[:10]}); pass --repo or set GITOPS_DATA_REPO")
    settings = read_settings(tree)
    if production_ref is None and settings.production_ref != "main":
        return production_settings(ws, settings.production_ref)
    return settings


def tracked_heads(ws: Workspace, settings: Settings) -> dict[str, str]:
    """ref -> head SHA for the production ref and every branch matching `settings.branches`."""
    heads = gitrepo.branch_heads(ws.repo, settings.branches)
    heads.update(gitrepo.branch_heads(ws.repo, settings.production_ref))
    return heads


RunStates = Callable[[str, str], list[str]]  # (env, sha) -> states of its runs: "active" | "success" | "failure"


def _one_ref(ws: Workspace, s: Settings, ref: str, sha: str, env: Environment, published: str | None,
             status, run_states: RunStates, loaded: dict[str, str] | None) -> Outcome:
    if published == sha:
        return Outcome(ref, env, sha, "up_to_date")
    if status is not None and status.commit == sha and status.status in FINAL:
        return Outcome(ref, env, sha, status.status, status.reason)
    try:
        ws.project(sha)
    except ProjectError as exc:
        ws.record_status(s.meta_schema, env, sha, "invalid", str(exc))
        return Outcome(ref, env, sha, "invalid", str(exc))
    plan = ws.plan(sha, env)
    failures = plan.failures(blocking=True)
    if failures:
        reason = plan.blocked_reason()
        ws.record_status(s.meta_schema, env, sha, "blocked", reason)
        return Outcome(ref, env, sha, "blocked", reason, plan, failures=failures, warnings=plan.failures(False))
    if plan.ready:
        try:
            record = publish_if_ready(ws, plan, ref)
        except Superseded as exc:
            return Outcome(ref, env, sha, "superseded", str(exc), plan)
        return Outcome(ref, env, sha, "published", f"{len(record.changed)} view(s) changed", plan, record,
                       warnings=plan.failures(False))
    states = run_states(env.name, sha)
    if "active" in states:
        return Outcome(ref, env, sha, "waiting", "a run is building this commit", plan)
    if states:
        reason = "the run for this commit finished without all builds/audits (see its logs in Dagster)"
        ws.record_status(s.meta_schema, env, sha, "failed", reason)
        return Outcome(ref, env, sha, "failed", reason, plan)
    if loaded is not None and loaded.get(ref) != sha:
        return Outcome(ref, env, sha, "reload", "definitions do not show this commit yet; reloading", plan)
    ws.record_status(s.meta_schema, env, sha, "building", f"{len(plan.to_build)} to build, {len(plan.to_audit)} to re-audit")
    return Outcome(ref, env, sha, "run", f"{len(plan.to_build)} to build", plan)


def reconcile(ws: Workspace, heads: dict[str, str], run_states: RunStates,
              loaded: dict[str, str] | None = None, settings: Settings | None = None) -> list[Outcome]:
    """One pass over all tracked refs (see module doc). `loaded` = ref -> SHA the Dagster
    definitions show; a run is only requested for a commit the definitions already have."""
    s = settings or production_settings(ws)
    with open_warehouse(ws.warehouse) as con:
        ensure_catalog(con, s.meta_schema)
        published = dict(con.execute(f'select env, commit from "{s.meta_schema}".environments').fetchall())
        # an environment serving a build marked invalid (changed outside Git) must be re-planned
        stale = con.execute(
            f'select distinct v.env from "{s.meta_schema}".env_views v join "{s.meta_schema}".builds b '
            "using (build_id) where b.invalid_reason is not null").fetchall()
        for (env_name,) in stale:
            published.pop(env_name, None)
        schemas = dict(con.execute(f'select env, schema_name from "{s.meta_schema}".environments').fetchall())
        statuses = ref_statuses(con, s.meta_schema)
    outcomes = []
    for ref, sha in sorted(heads.items(), key=lambda kv: kv[0] != s.production_ref):
        env = ws.environment(ref, s)
        try:
            outcomes.append(_one_ref(ws, s, ref, sha, env, published.get(ref), statuses.get(ref), run_states, loaded))
        except GitopsError as exc:
            outcomes.append(Outcome(ref, env, sha, "failed", str(exc)))
    for env_name in sorted((set(published) | set(statuses)) - set(heads) - {s.production_ref}):
        schema = schemas.get(env_name) or statuses[env_name].schema
        with open_warehouse(ws.warehouse) as con:
            dropped = unpublish(con, env_name, schema, s.meta_schema)
        outcomes.append(Outcome(env_name, Environment(env_name, schema), None, "dropped",
                                f"branch deleted: dropped schema {schema} ({len(dropped)} views)"))
    return outcomes


def publish_refresh(ws: Workspace, env_name: str, sha: str, run_id: str, settings: Settings | None = None) -> Outcome:
    """After a scheduled run rebuilt models of `env` at `sha`: publish its fresh builds if audited."""
    s = settings or production_settings(ws)
    env = ws.environment(env_name, s)
    plan = ws.plan(sha, env, prefer_run=run_id)
    failures = plan.failures(blocking=True)
    if failures:
        reason = "scheduled refresh blocked: " + plan.blocked_reason()
        return Outcome(env_name, env, sha, "blocked", reason, plan, failures=failures)
    try:
        record = publish_if_ready(ws, plan, env_name, run_id)
    except Superseded as exc:
        return Outcome(env_name, env, sha, "superseded", str(exc), plan)
    if record is None:
        return Outcome(env_name, env, sha, "failed", "the scheduled run left builds or audits missing", plan)
    return Outcome(env_name, env, sha, "published", f"refresh: {len(record.changed)} view(s) changed", plan, record,
                   warnings=plan.failures(False))
