"""The one loop: plan -> execute -> gate -> publish -> gc -> status, for one ref.

The CLI `sync`, the Git-ref sensor and scheduled refreshes all call `apply`; they differ only in
their executor. A synchronous executor (the CLI: an in-process Dagster run) executes the plan and
`apply` gates and publishes at once. A requesting executor (sensors, schedules) hands back a
RunRequest; the plan waits in the catalog, and the next `apply` for that ref, once the run has
finished, gates exactly that plan by reading the audit results its steps recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, Protocol

from gitops_data import gitrepo
from gitops_data.alerts import apply_events, send
from gitops_data.deployment.core import Deployment, Environment
from gitops_data.engines import warehouse_turn
from gitops_data.errors import BuildError, GitError, GitopsError, ProjectError, PublishBlocked, Superseded
from gitops_data.plan import Plan, Status, Verdict, gate
from gitops_data.spec.loader import read_settings
from gitops_data.spec.schema import Settings
from gitops_data.spec.tree import GitTree
from gitops_data.warehouse.catalog import now
from gitops_data.warehouse.inspect import collect_garbage
from gitops_data.warehouse.publish import PublishRecord, PublishTarget, publish_builds, unpublish

RunState = Literal["active", "success", "failure"]
# a run requested by a sensor or schedule shows up in Dagster within a tick; past this, a plan
# that never got a run is dropped and planned again
REQUEST_GRACE = timedelta(seconds=120)


@dataclass(frozen=True)
class Execution:
    """What an executor did with a plan."""

    done: bool  # the run finished (synchronous executors); else it was requested
    run_id: str | None = None
    error: str | None = None  # a failed run's root cause
    request: Any = None  # a requesting executor's RunRequest


class Executor(Protocol):
    synchronous: bool  # executes in `execute` (else it requests a run the daemon launches later)

    def execute(self, plan: Plan, plan_id: str, trigger: str) -> Execution: ...

    def run_state(self, plan_id: str) -> RunState | None:
        """State of the run executing `plan_id`, None if there is none."""


@dataclass
class ApplyResult:
    """What one `apply` decided for one ref."""

    ref: str
    env: Environment
    commit: str | None
    status: Status
    detail: str = ""
    plan: Plan | None = None
    publish: PublishRecord | None = None
    run_id: str | None = None
    request: Any = None
    failures: list[tuple[str, str, int | None]] = field(default_factory=list)
    warnings: list[tuple[str, str, int | None]] = field(default_factory=list)
    error: GitopsError | None = None

    @property
    def outcome(self) -> str:
        """One line for the run's `gitops/outcome` tag: published, blocked: <checks>, failed, ..."""
        if self.status == Status.BLOCKED and self.failures:
            return "blocked: " + ", ".join(f"{m}.{c}" for m, c, _ in self.failures)[:200]
        return str(self.status)

    def raise_for_status(self) -> ApplyResult:
        """The error a CLI user should see for a commit that was not published."""
        if self.error is not None:
            raise self.error
        if self.status == Status.BLOCKED:
            raise PublishBlocked(f"not published: {self.detail}")
        if self.status == Status.FAILED:
            raise BuildError(self.detail)
        if self.status == Status.SUPERSEDED:
            raise Superseded(self.detail)
        if self.status == Status.BUILDING:
            raise GitopsError(f"not published yet: {self.detail}")
        return self


def publish_plan(ws: Deployment, plan: Plan, ref: str | None, run_id: str | None = None) -> PublishRecord:
    """Publish `plan`'s builds if `ref` (when given) still points at its commit; then collect garbage.

    The ref check and the publish happen under the warehouse lock, so two publishers of one
    environment are serialized and an older commit never overwrites a newer one.
    """
    s = ws.project(plan.commit).settings
    builds = {n: (m.build.build_id, m.build.table) for n, m in plan.models.items() if m.build is not None}
    with ws.catalog() as cat:
        if ref is not None:
            try:
                head = gitrepo.resolve(ws.repo, ref)
            except GitError:
                raise Superseded(
                    f"{ref} was deleted while {plan.commit[:10]} was being built; nothing published"
                ) from None
            if head != plan.commit:
                raise Superseded(
                    f"{ref} moved past {plan.commit[:10]} while it was being built; the newer commit wins"
                )
        ids = [b for b, _ in builds.values()]
        gone = sorted(set(ids) - cat.existing_builds(s.internal_schema, ids))
        if gone:  # checked under the same lock as the flip: no view is ever pointed at a dropped table
            raise BuildError(
                f"builds {', '.join(gone)} of {plan.commit[:10]} are gone (collected or changed "
                "outside Git) since they were audited; nothing published, run sync again"
            )
        record = publish_builds(
            cat,
            PublishTarget(plan.env, plan.schema, plan.commit, builds),
            s.internal_schema,
            run_id,
            tuple(s.consumers),
        )
        if s.retention.gc_after_publish:
            # builds that no retained publish needs go now, so their space is reused by the next build
            collect_garbage(cat, s, protected_commits=frozenset(gitrepo.branch_heads(ws.repo).values()))
        return record


class _Apply:
    """One apply of one ref (state shared by its steps)."""

    def __init__(self, ws: Deployment, ref: str, env: Environment, sha: str, settings: Settings):
        self.ws, self.ref, self.env, self.sha, self.s = ws, ref, env, sha, settings

    def result(self, status: Status, detail: str = "", **kw) -> ApplyResult:
        """The outcome, recorded as the environment's status if its ref still points at this commit
        (the run of an older commit never overwrites what the head's apply said)."""
        if status != Status.PUBLISHED and self._is_head():  # a publish records its status itself
            recorded = Status.PUBLISHED if status == Status.UP_TO_DATE else status
            self.ws.record_status(self.env, self.sha, recorded, detail)
        return ApplyResult(self.ref, self.env, self.sha, status, detail, **kw)

    def _is_head(self) -> bool:
        try:
            return gitrepo.resolve(self.ws.repo, self.env.name) == self.sha
        except GitError:
            return False

    def conclude(
        self, plan: Plan, plan_id: str | None, run_id: str | None, run_error: str | None
    ) -> ApplyResult:
        """Gate `plan` on what its steps left, publish it if every blocking check passed, alert. A
        stored plan is claimed first, so two processes never conclude (and publish) one plan twice."""
        ids = [m.build.build_id for m in plan.models.values() if m.build is not None]
        with self.ws.catalog() as cat:
            if plan_id is not None and not cat.claim_plan(plan_id, also_superseded=True):
                return ApplyResult(
                    self.ref, self.env, self.sha, Status.BUILDING, f"plan {plan_id} is concluded"
                )
            verdict = gate(plan, cat.existing_builds(plan.internal_schema, ids), cat.latest_audits(ids))
        result = self._verdict(verdict, run_id, run_error)
        if plan_id is not None:
            with self.ws.catalog() as cat:
                cat.conclude_plan(plan_id, result.status, result.detail)
        self.alert(result)
        return result

    def alert(self, r: ApplyResult) -> None:
        """The alerts the project at this commit declares, for what this apply decided."""
        project = self.ws.project(self.sha)
        if project.alerts:
            changed = list(r.publish.changed) if r.publish else []
            events = apply_events(
                r.status, r.env.name, r.env.schema, r.commit, r.detail, changed, r.failures + r.warnings
            )
            send(project.alerts, events, project.settings.name, self.ws.state_dir)

    def _verdict(self, v: Verdict, run_id: str | None, run_error: str | None) -> ApplyResult:
        kw = {"plan": v.plan, "run_id": run_id, "failures": v.failures, "warnings": v.warnings}
        # a blocking failure comes first: what it stopped downstream (Dagster skips those steps) is moot
        if v.failures:
            return self.result(Status.BLOCKED, v.plan.blocked_reason(), **kw)
        if v.missing and run_error is None:  # a run that succeeded without them: a partial UI selection
            not_built = ", ".join(v.missing)
            return self.result(Status.BUILDING, f"the run did not build {not_built}; planning again", **kw)
        if v.missing:
            return self.result(Status.FAILED, f"{run_error} (not built: {', '.join(v.missing)})", **kw)
        if v.not_run:
            names = ", ".join(f"{m}.{c}" for m, c in v.not_run)
            return self.result(
                Status.BUILDING, f"checks not run yet: {names}; the next sync or tick runs them", **kw
            )
        if v.plan.unchanged:
            return self.result(Status.UP_TO_DATE, "", **kw)
        try:
            record = publish_plan(self.ws, v.plan, self.ref if self.ref == self.env.name else None, run_id)
        except Superseded as exc:
            return self.result(Status.SUPERSEDED, str(exc), **kw)
        return ApplyResult(
            self.ref,
            self.env,
            self.sha,
            Status.PUBLISHED,
            f"{len(record.changed)} view(s) changed",
            publish=record,
            **kw,
        )


def apply(
    ws: Deployment,
    ref: str,
    executor: Executor,
    *,
    env_name: str | None = None,
    trigger: str = "cli",
    rebuild: frozenset[str] = frozenset(),
    retry_final: bool = True,
    full: bool = False,
) -> ApplyResult:
    """Bring the environment of `ref` to the commit `ref` points at, as far as its checks allow.

    `retry_final=False` (the sensor) leaves a head that is blocked, failed or invalid alone until the
    branch moves; the CLI retries it. `rebuild` forces new builds of those models (a refresh)."""
    with warehouse_turn(ws.warehouse):  # one connection from plan to publish, shared with the run
        return _apply(ws, ref, executor, env_name, trigger, rebuild, retry_final, full)


def _apply(
    ws: Deployment,
    ref: str,
    executor: Executor,
    env_name: str | None,
    trigger: str,
    rebuild: frozenset[str],
    retry_final: bool,
    full: bool,
) -> ApplyResult:
    sha = ws.resolve(ref)
    settings = read_settings(GitTree(ws.repo, sha))  # only the settings: cheap, even for an invalid head
    run = _Apply(ws, ref, ws.environment(env_name or ref, settings), sha, settings)
    env = run.env
    with ws.catalog() as cat:
        held = cat.ref_statuses().get(env.name)
        # a requested run is awaited; a synchronous executor plans afresh (an open plan of a killed
        # CLI would look active for ever), and its new plan supersedes the open one
        open_plan = cat.open_plan(env.name, sha) if not rebuild and not executor.synchronous else None
        stored = cat.plan(open_plan.plan_id) if open_plan else None
    if held is not None and held.commit == sha and not rebuild:
        if held.status == Status.ROLLED_BACK or (held.status.final and not retry_final):
            return ApplyResult(ref, env, sha, held.status, held.reason)
    try:
        ws.project(sha)
    except ProjectError as exc:
        return run.result(Status.INVALID, str(exc), error=exc)
    if open_plan is not None and stored is not None:
        state = executor.run_state(open_plan.plan_id)
        if state == "active":
            return ApplyResult(ref, env, sha, Status.BUILDING, "a run is building this commit", stored)
        if state is not None:
            error = "the run failed (see its logs in Dagster)" if state == "failure" else None
            result = run.conclude(stored, open_plan.plan_id, None, error)
            if result.status != Status.BUILDING:  # else: a partial run or checks not run; plan again
                return result
        elif now() - open_plan.created_at < REQUEST_GRACE:
            return ApplyResult(ref, env, sha, Status.BUILDING, "a run was requested for this commit", stored)
        else:
            with ws.catalog() as cat:
                cat.conclude_plan(
                    open_plan.plan_id, Status.SUPERSEDED, "its run never started; planned again"
                )
    plan = ws.plan(sha, env, rebuild, full=full)
    if not plan.has_work or plan.failures():  # reused builds already failed their blocking checks
        return run.conclude(plan, None, None, None)
    plan_id = uuid.uuid4().hex[:12]
    with ws.catalog() as cat:
        cat.save_plan(plan_id, plan, trigger)
    detail = f"{len(plan.to_build)} to build, {len(plan.to_audit)} to re-audit"
    run.result(Status.BUILDING, detail)
    try:
        execution = executor.execute(plan, plan_id, trigger)
    except BaseException as exc:
        with ws.catalog() as cat:
            cat.conclude_plan(plan_id, Status.FAILED, f"executor crashed: {exc!r}")
        raise
    if not execution.done:
        return ApplyResult(ref, env, sha, Status.BUILDING, detail, plan, request=execution.request)
    return run.conclude(plan, plan_id, execution.run_id, execution.error)


def apply_all(
    ws: Deployment,
    heads: dict[str, str],
    executor: Executor,
    settings: Settings | None = None,
    trigger: str = "git",
) -> list[ApplyResult]:
    """One pass over all tracked refs (the Git-ref sensor): apply each head that is not served yet,
    and drop the environments of deleted branches."""
    with warehouse_turn(ws.warehouse):
        return _apply_all(ws, heads, executor, settings or ws.production_settings(), trigger)


def _apply_all(
    ws: Deployment, heads: dict[str, str], executor: Executor, s: Settings, trigger: str
) -> list[ApplyResult]:
    with ws.catalog() as cat:
        envs = cat.environments()
        # an environment serving a build marked invalid (changed outside Git) must be re-planned
        stale = {sb.env for sb in cat.served() if sb.invalid_reason is not None}
        statuses = cat.ref_statuses()
        checkouts = set(cat.checkouts())  # environments that follow no branch: never dropped here
        open_at_head = set()
        for row in cat.open_plans():  # plans of commits that are no longer a head never run now
            if heads.get(row.env) == row.commit:
                open_at_head.add(row.env)
            else:
                cat.conclude_plan(row.plan_id, Status.SUPERSEDED, "its branch moved on (or is gone)")
    out = []
    for ref, sha in sorted(heads.items(), key=lambda kv: kv[0] != s.production_ref):
        env = ws.environment(ref, s)
        published = envs.get(ref, (None, None, None))[1]
        status = statuses.get(ref)
        if (
            published == sha
            and ref not in stale
            and ref not in open_at_head
            and (status is None or status.commit != sha or status.status == Status.PUBLISHED)
        ):
            out.append(ApplyResult(ref, env, sha, Status.UP_TO_DATE))
            continue
        try:
            out.append(apply(ws, ref, executor, trigger=trigger, retry_final=False))
        except GitopsError as exc:
            out.append(ApplyResult(ref, env, sha, Status.FAILED, str(exc), error=exc))
    for env_name in sorted((set(envs) | set(statuses)) - set(heads) - {s.production_ref} - checkouts):
        schema = envs[env_name][0] if env_name in envs else statuses[env_name].schema
        with ws.catalog() as cat:
            dropped = unpublish(cat, env_name, schema)
        out.append(
            ApplyResult(
                env_name,
                Environment(env_name, schema),
                None,
                Status.DROPPED,
                f"branch deleted: dropped schema {schema} ({len(dropped)} views)",
            )
        )
    return out


def conclude_run(
    ws: Deployment, meta: str, plan_id: str, run_id: str | None, error: str | None
) -> ApplyResult | None:
    """Gate and publish a stored plan at the end of the run that executed it (sensor and schedule
    runs publish themselves, one sensor tick sooner). A plan superseded while its run went on (an
    overlapping scheduled refresh) still publishes if nothing was published since it was made.
    None if the plan is gone, concluded, or overtaken."""
    with ws.catalog() as cat:
        row = cat.plan_row(plan_id)
        plan = (
            cat.plan(plan_id) if row is not None and row.status in ("open", str(Status.SUPERSEDED)) else None
        )
        if plan is not None and row.status != "open":
            published_at = cat.environments().get(plan.env, (None, None, None))[2]
            if published_at is not None and published_at > row.created_at:
                return None
    if plan is None:
        return None
    s = ws.project(plan.commit).settings
    run = _Apply(ws, plan.env, Environment(plan.env, plan.schema), plan.commit, s)
    return run.conclude(plan, plan_id, run_id, error)
