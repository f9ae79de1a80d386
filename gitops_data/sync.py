"""The whole loop for one ref: load -> validate -> plan -> build + audit (Dagster run) -> publish."""

from __future__ import annotations

from dataclasses import dataclass, field

from gitops_data import gitrepo
from gitops_data.errors import BuildError, GitError, GitopsError, ProjectError, PublishBlocked, Superseded
from gitops_data.plan import Plan
from gitops_data.spec.loader import read_settings
from gitops_data.spec.tree import GitTree
from gitops_data.warehouse.connection import open_warehouse
from gitops_data.warehouse.inspect import collect_garbage
from gitops_data.warehouse.publish import PublishRecord, publish
from gitops_data.workspace import Workspace


@dataclass
class SyncResult:
    env: str
    schema: str
    commit: str
    status: str  # published | up_to_date | rolled_back | blocked | failed | invalid | superseded
    plan: Plan | None = None
    publish: PublishRecord | None = None
    run_id: str | None = None
    failures: list[tuple[str, str, int | None]] = field(default_factory=list)
    warnings: list[tuple[str, str, int | None]] = field(default_factory=list)
    message: str = ""


def publish_if_ready(ws: Workspace, plan: Plan, ref: str | None, run_id: str | None = None) -> PublishRecord | None:
    """Publish `plan` if it is ready and `ref` (when given) still points at its commit.

    The ref check and the publish happen under the warehouse lock, so two publishers of one
    environment are serialized and an older commit never overwrites a newer one.
    """
    if not plan.ready:
        return None
    s = ws.project(plan.commit).settings
    with open_warehouse(ws.warehouse) as con:
        if ref is not None:
            try:
                head = gitrepo.resolve(ws.repo, ref)
            except GitError:
                raise Superseded(f"{ref} was deleted while {plan.commit[:10]} was being built; nothing published") from None
            if head != plan.commit:
                raise Superseded(f"{ref} moved past {plan.commit[:10]} while it was being built; the newer commit wins")
        record = publish(con, plan, s.internal_schema, s.meta_schema, run_id)
        if s.retention.gc_after_publish:
            # builds that no retained publish needs go now, so their space is reused by the next build
            heads = frozenset(gitrepo.branch_heads(ws.repo).values())
            collect_garbage(con, s, protected_commits=heads)
        return record


def sync(ws: Workspace, ref: str, instance, env_name: str | None = None, trigger: str = "cli",
         rebuild: frozenset[str] = frozenset()) -> SyncResult:
    """Bring the environment of `ref` to the commit `ref` points at, if its checks allow.

    `instance` is a DagsterInstance, or a function returning one (called only if something has to
    be built, so a sync with nothing to build never imports Dagster)."""
    sha = ws.resolve(ref)
    try:
        project = ws.project(sha)
    except ProjectError as exc:
        settings = read_settings(GitTree(ws.repo, sha))
        env = ws.environment(env_name or ref, settings)
        ws.record_status(settings.meta_schema, env, sha, "invalid", str(exc))
        raise
    env = ws.environment(env_name or ref, project.settings)
    meta = project.settings.meta_schema
    held = ws.ref_status(meta, env.name)
    if not rebuild and held is not None and held.status == "rolled_back" and held.commit == sha:
        return SyncResult(env.name, env.schema, sha, "rolled_back", message=held.reason)
    plan = ws.plan(sha, env, rebuild)
    result = SyncResult(env.name, env.schema, sha, "published", plan)
    if plan.to_build or plan.to_audit:
        from gitops_data.orchestration.run import execute_plan

        ws.record_status(meta, env, sha, "building", f"{len(plan.to_build)} to build, {len(plan.to_audit)} to re-audit")
        outcome = execute_plan(ws, plan, instance() if callable(instance) else instance, trigger)
        result.run_id = outcome.run_id
        plan = ws.plan(sha, env, prefer_run=outcome.run_id)  # this run's builds (a refresh) win
        result.plan = plan
        if not outcome.success and not plan.failures():
            ws.record_status(meta, env, sha, "failed", outcome.error or "run failed")
            raise BuildError(f"run {outcome.run_id} failed: {outcome.error}")
    result.failures = plan.failures(blocking=True)
    result.warnings = plan.failures(blocking=False)
    if result.failures:
        ws.record_status(meta, env, sha, "blocked", plan.blocked_reason())
        result.status = "blocked"
        raise PublishBlocked(f"not published: {plan.blocked_reason()}")
    if plan.unchanged and not plan.removed and all(
        m.action != "build" and m.reason == "unchanged" for m in plan.models.values() if m.action != "external"
    ):
        result.status = "up_to_date"
        return result
    try:
        result.publish = publish_if_ready(ws, plan, ref if ref == env.name else None, result.run_id)
    except Superseded:
        ws.record_status(meta, env, sha, "superseded", "the ref moved on during the build")
        raise
    if result.publish is None:
        raise GitopsError(f"commit {sha[:10]} is not ready to publish (missing builds or audits)")
    return result
