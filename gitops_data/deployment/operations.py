"""What the CLI (and anyone else) can ask of a deployment, each returning a result to render:
status, history, rollback, checkout, diff, gc, drift, repair; `build` and `sync` are
`apply.apply` with their trigger. Nothing here prints."""

from __future__ import annotations

from dataclasses import dataclass

from gitops_data import gitrepo
from gitops_data.deployment.core import Deployment, Environment
from gitops_data.errors import GitopsError, ProjectError
from gitops_data.naming import check_identifier, environment_schema
from gitops_data.plan import Plan, Status
from gitops_data.project.columns import ColumnTrace, trace
from gitops_data.project.loader import load_project
from gitops_data.project.tree import DirTree, GitTree
from gitops_data.warehouse.drift import Drift, detect_drift
from gitops_data.warehouse.drift import repair as repair_drift
from gitops_data.warehouse.inspect import GcReport, ModelDiff, collect_garbage, diff_envs
from gitops_data.warehouse.last_build import LastBuildReader
from gitops_data.warehouse.publish import PublishRecord, republish, unpublish


@dataclass(frozen=True)
class Target:
    """A ref resolved to its commit and the environment it is planned for."""

    ref: str
    commit: str
    env: Environment


def target(dep: Deployment, ref: str | None, env_name: str | None = None) -> Target:
    """`ref` (default: the production ref) -> its commit and environment (`env_name`, default the ref)."""
    ref = dep.settings.production_ref if ref is None else ref  # an empty --ref is an invalid ref
    sha = dep.resolve(ref)
    return Target(ref, sha, dep.environment(env_name or ref, dep.project(sha).settings))


def plan(dep: Deployment, t: Target, full: bool = False) -> Plan:
    return dep.plan(t.commit, t.env, full=full)


@dataclass(frozen=True)
class EnvState:
    """One environment as `status` reports it."""

    env: str
    schema: str
    published: str | None
    head: str | None
    state: str  # up_to_date | not_synced | branch_deleted | checkout | a Status
    reason: str
    drift: bool


@dataclass(frozen=True)
class StatusReport:
    repo: str
    warehouse: str  # its label: a URL's password masked
    environments: list[EnvState]
    drift: list[Drift]


def status(dep: Deployment) -> StatusReport:
    """Per environment: what it serves, its ref's head, and why they differ (one word, one reason)."""
    s = dep.settings
    heads = dep.tracked_heads()
    with dep.catalog() as cat:
        envs = cat.environments()
        statuses = cat.ref_statuses()
        checkouts = cat.checkouts()
        drifts = detect_drift(cat, s.internal_schema)
    rows = []
    for name in sorted(set(heads) | set(envs), key=lambda n: (n != s.production_ref, n)):
        pub, head, st = envs.get(name), heads.get(name), statuses.get(name)
        published = pub.commit if pub else None
        reason = st.reason if st and st.commit == head else ""
        if name in checkouts:
            state = "checkout"
        elif head is None:
            state = "branch_deleted"
        elif published == head:
            state = "up_to_date"
        elif st and st.commit == head:
            state = str(st.status)
        else:
            state = "not_synced"
        rows.append(
            EnvState(
                name,
                pub.schema if pub else environment_schema(s.external_schema, name, s.production_ref),
                published,
                head,
                state,
                reason,
                any(d.env == name or name in d.env.split(", ") for d in drifts),
            )
        )
    return StatusReport(dep.repo, dep.warehouse_label, rows, drifts)


def history(dep: Deployment, env_name: str | None, limit: int) -> tuple[str, list[dict]]:
    """(environment, its publishes newest first)."""
    env_name = env_name or dep.settings.production_ref
    with dep.catalog() as cat:
        return env_name, cat.history(env_name, limit)


@dataclass(frozen=True)
class Rollback:
    env: str
    publish_id: str  # the publish served again
    record: PublishRecord


def rollback(dep: Deployment, env_name: str | None, to: str) -> Rollback:
    """Serve exactly what an earlier publish served; the head is held until the branch moves."""
    s = dep.settings
    env_name = env_name or s.production_ref
    with dep.catalog() as cat:
        matches = [
            r
            for r in cat.history(env_name, 1000)
            if r["publish_id"].startswith(to) or r["commit"].startswith(to)
        ]
        if not matches:
            raise GitopsError(
                f"no publish of {env_name!r} matches {to!r}; see `gitops-data history --env {env_name}`"
            )
        head = gitrepo.branch_heads(dep.repo, env_name).get(env_name)
        publish_id = matches[0]["publish_id"]
        record = republish(cat, env_name, publish_id, s.internal_schema, head, consumers=tuple(s.consumers))
    return Rollback(env_name, publish_id, record)


@dataclass(frozen=True)
class CheckedOut:
    name: str
    source_env: str
    publish_id: str
    commit: str
    schema: str
    record: PublishRecord


def checkout(dep: Deployment, to: str, name: str | None) -> CheckedOut:
    """Serve a retained commit (or publish id) as its own read-only environment, zero copy."""
    s = dep.settings
    heads = dep.tracked_heads()
    with dep.catalog() as cat:
        hit = cat.find_publish(to)
        if hit is None:
            raise GitopsError(
                f"no publish of any environment matches {to!r}: only published commits are retained "
                "(see `gitops-data history --env <branch>`)"
            )
        name = check_identifier(name or f"at_{hit.commit[:10]}", "checkout name")
        schema = f"{s.external_schema}__{name}"
        taken = {environment_schema(s.external_schema, ref, s.production_ref) for ref in heads}
        taken |= {e.schema for e in cat.environments().values()}
        if schema in taken:
            raise GitopsError(f"schema {schema} is already an environment's; choose another name with --as")
        env = f"checkout:{name}"
        record = republish(
            cat, hit.env, hit.publish_id, s.internal_schema, into=(env, schema), consumers=tuple(s.consumers)
        )
        cat.add_checkout(env, schema, hit.commit, record.publish_id)
    return CheckedOut(name, hit.env, hit.publish_id, hit.commit, schema, record)


def drop_checkout(dep: Deployment, name: str) -> tuple[str, list[str]]:
    """Remove a checkout: (its schema, the views dropped)."""
    with dep.catalog() as cat:
        found = cat.checkouts().get(f"checkout:{name}")
        if found is None:
            raise GitopsError(f"no checkout {name!r}; see `gitops-data status`")
        return found.schema, unpublish(cat, found.env, found.schema)


def diff(dep: Deployment, env_a: str, env_b: str) -> list[ModelDiff]:
    with dep.catalog() as cat:
        return diff_envs(cat, env_a, env_b)


def gc(dep: Deployment, dry_run: bool) -> GcReport:
    with dep.catalog() as cat:
        return collect_garbage(cat, dep.settings, dry_run)


def drift(dep: Deployment) -> list[Drift]:
    with dep.catalog() as cat:
        return detect_drift(cat, dep.settings.internal_schema)


def repair(dep: Deployment) -> list[Drift]:
    """Restore published views; builds whose tables changed are marked invalid (rebuilt next sync)."""
    with dep.catalog() as cat:
        found = detect_drift(cat, dep.settings.internal_schema)
        repair_drift(cat, found, tuple(dep.settings.consumers))
    return found


__all__ = [
    "CheckedOut",
    "EnvState",
    "Rollback",
    "StatusReport",
    "Status",
    "Target",
    "checkout",
    "diff",
    "drift",
    "drop_checkout",
    "gc",
    "history",
    "plan",
    "repair",
    "rollback",
    "status",
    "target",
]


def lineage(dep: Deployment, ref: str | None, column: str) -> ColumnTrace:
    """The upstream and downstream columns of MODEL.COLUMN at `ref` (default: the production ref),
    from the SQL alone: nothing is built or read from the warehouse."""
    sha = dep.resolve(dep.settings.production_ref if ref is None else ref)
    return trace(dep.project(sha).columns, column)


@dataclass(frozen=True)
class Validation:
    """What `validate` found: the project's counts and column notes, or the error listing every issue."""

    target: str
    kinds: dict[str, int]
    schedules: int = 0
    alerts: int = 0
    column_notes: dict[str, str] | None = None
    error: ProjectError | None = None
    warehouse_note: str | None = None  # why the last builds' columns were not read

    @property
    def nodes(self) -> int:
        return sum(self.kinds.values())


def validate(dep: Deployment, path: str | None, ref: str | None) -> Validation:
    """Load and check the project in the folder `path`, or at `ref` of the repo (the repo's
    folder when neither is given); never raises for an invalid project. Where nothing static says
    a model's columns, its last build's stand in: the warehouse is then read, read-only, if it
    exists and is free at once (else `warehouse_note` says why not)."""
    tree = GitTree(dep.repo, dep.resolve(ref), label=ref) if ref else DirTree(path or dep.repo)
    reader = LastBuildReader(dep.warehouse)
    try:
        project = load_project(tree, dep.dialect, reader)
    except ProjectError as exc:
        return Validation(tree.label, {}, error=exc, warehouse_note=reader.note)
    kinds: dict[str, int] = {}
    for n in project.nodes.values():
        kinds[n.kind] = kinds.get(n.kind, 0) + 1
    return Validation(
        tree.label,
        kinds,
        len(project.schedules),
        len(project.alerts),
        project.columns.notes,
        warehouse_note=reader.note,
    )
