"""The one loop, for one ref: hold? -> claim -> execute -> conclude (gate, publish, record) ->
status. The rules are `lifecycle`'s; this module carries them out.

Every entry point calls `apply` (the sensor through `apply_all`); they differ only in their runner.
A synchronous runner (the CLI: an in-process Dagster run) executes the plan and `apply` reads how
the run concluded it. A requesting runner (sensors, schedules) hands back a RunRequest; the run
the daemon launches concludes its plan itself (`conclude_run`, called by the plan job).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, Unpack

from gitops_data import gitrepo, progress
from gitops_data.alerts import apply_events, send
from gitops_data.deployment.core import Deployment, Environment
from gitops_data.deployment.lifecycle import ApplyResult, Liveness, Owner, RunState, liveness
from gitops_data.engines import warehouse_turn
from gitops_data.errors import BuildError, GitError, GitopsError, ProjectError, Superseded
from gitops_data.plan import Plan, PlanState, Status, Trigger, Verdict, gate
from gitops_data.project.loader import read_settings
from gitops_data.project.schema import Settings
from gitops_data.project.tree import GitTree
from gitops_data.warehouse.catalog import PlanRow
from gitops_data.warehouse.inspect import collect_garbage
from gitops_data.warehouse.publish import PublishRecord, PublishTarget, publish_builds, unpublish

JOIN_POLL_SECONDS = 0.5  # how often a caller that waits for another entry point's run looks again
MAX_RELEASES = 3  # claims of one commit released for dead runs before its next death is a failure


@dataclass(frozen=True)
class Execution:
    """What a runner did with a plan."""

    done: bool  # the run finished (synchronous runners); else it was requested
    run_id: str | None = None
    error: str | None = None  # a failed run's root cause
    request: Any = None  # a requesting runner's RunRequest


class Runner(Protocol):
    """How plans become Dagster runs, and how what happens outside a run is recorded in Dagster."""

    synchronous: bool  # executes in `execute` (else it requests a run the daemon launches later)

    def execute(self, plan: Plan, plan_id: str, trigger: Trigger) -> Execution: ...

    def run_state(self, plan_id: str) -> RunState | None:
        """State of the run executing `plan_id`, None if there is none."""

    def record(self, result: ApplyResult) -> None:
        """Report a conclusion made outside a run (a publish of reused builds) to Dagster."""


def publish_plan(dep: Deployment, plan: Plan, ref: str | None, run_id: str | None = None) -> PublishRecord:
    """Publish `plan`'s builds if `ref` (when given) still points at its commit; then collect garbage.

    The ref check and the publish happen under the warehouse lock, so two publishers of one
    environment are serialized and an older commit never overwrites a newer one.
    """
    s = dep.project(plan.commit).settings
    builds = {n: (m.build.build_id, m.build.table) for n, m in plan.models.items() if m.build is not None}
    with dep.catalog() as cat:
        if ref is not None:
            try:
                head = gitrepo.resolve(dep.repo, ref)
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
            collect_garbage(cat, s, protected_commits=frozenset(gitrepo.branch_heads(dep.repo).values()))
        return record


class _RunFields(TypedDict, total=False):
    """The optional fields of an ApplyResult that `_Lifecycle.result` passes on."""

    plan: Plan | None
    run_id: str | None
    failures: list[tuple[str, str, int | None]]
    warnings: list[tuple[str, str, int | None]]
    error: GitopsError | None


class _Lifecycle:
    """One commit of one environment, as one entry point (`trigger`) sees it."""

    def __init__(
        self, dep: Deployment, ref: str, env: Environment, sha: str, settings: Settings, trigger: Trigger
    ):
        self.dep, self.ref, self.env, self.sha, self.s, self.trigger = dep, ref, env, sha, settings, trigger

    def result(self, status: Status, detail: str = "", **kw: Unpack[_RunFields]) -> ApplyResult:
        """The outcome, recorded as the environment's status if its ref still points at this commit
        (the run of an older commit never overwrites what the head's apply said). `build`, which
        never publishes, records nothing there."""
        if status != Status.PUBLISHED and self.trigger.publishes and self._is_head():
            recorded = Status.PUBLISHED if status == Status.UP_TO_DATE else status
            self.dep.record_status(self.env, self.sha, recorded, detail)
        return ApplyResult(self.ref, self.env, self.sha, status, detail, **kw)

    def _held(self) -> str | None:
        """Why this commit may not be published in its environment now (a rollback holds it)."""
        with self.dep.catalog() as cat:
            st = cat.ref_statuses().get(self.env.name)
        if st is not None and st.commit == self.sha and st.status == Status.ROLLED_BACK:
            return st.reason
        return None

    def _is_head(self) -> bool:
        try:
            return gitrepo.resolve(self.dep.repo, self.env.name) == self.sha
        except GitError:
            return False

    # -- conclude ---------------------------------------------------------------------------
    def conclude(
        self, plan: Plan, plan_id: str | None, run_id: str | None, run_error: str | None
    ) -> ApplyResult | None:
        """Gate `plan` on what its steps left, publish it if every blocking check passed (unless the
        trigger never publishes), alert, and store the result with the plan. A stored plan is taken
        first, so two processes never conclude one plan twice: None if another one has."""
        ids = [m.build.build_id for m in plan.models.values() if m.build is not None]
        with self.dep.catalog() as cat:
            if plan_id is not None and not cat.begin_conclusion(plan_id, str(Owner.current())):
                return None
            verdict = gate(plan, cat.existing_builds(plan.internal_schema, ids), cat.latest_audits(ids))
        try:
            result = self._verdict(verdict, run_id, run_error)
        except BaseException as exc:
            if plan_id is not None:  # a caller that waits raises the same error (class, exit code)
                error = exc if isinstance(exc, GitopsError) else None
                failed = ApplyResult(
                    self.ref,
                    self.env,
                    self.sha,
                    Status.FAILED,
                    f"concluding failed: {exc}",
                    plan,
                    error=error,
                )
                with self.dep.catalog() as cat:
                    cat.conclude_plan(plan_id, Status.FAILED, failed.detail, failed.to_json())
            raise
        if plan_id is not None:
            with self.dep.catalog() as cat:
                cat.conclude_plan(plan_id, result.status, result.detail, result.to_json())
        if self.trigger.publishes:
            self.alert(result)
        return result

    def alert(self, r: ApplyResult) -> None:
        """The alerts the project at this commit declares, for what this apply decided."""
        project = self.dep.project(self.sha)
        if project.alerts:
            changed = list(r.publish.changed) if r.publish else []
            events = apply_events(
                r.status, r.env.name, r.env.schema, r.commit, r.detail, changed, r.failures + r.warnings
            )
            send(project.alerts, events, project.settings.name, self.dep.state_dir)

    def _verdict(self, v: Verdict, run_id: str | None, run_error: str | None) -> ApplyResult:
        kw = _RunFields(plan=v.plan, run_id=run_id, failures=v.failures, warnings=v.warnings)
        # a blocking failure comes first: what it stopped downstream (Dagster skips those steps) is moot
        if v.failures:
            reason = v.plan.blocked_reason()
            if run_error is not None:  # builds failed too: the progress lines promised their errors
                reason = f"{reason}; {run_error}"
            return self.result(Status.BLOCKED, reason, **kw)
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
        if not self.trigger.publishes:
            built = len(v.plan.to_build)
            return self.result(
                Status.BUILT, f"{built} built, every blocking check passed; not published", **kw
            )
        if v.plan.unchanged:
            return self.result(Status.UP_TO_DATE, "", **kw)
        held = self._held()
        if held is not None:  # a rollback since the run started binds its conclusion too
            return ApplyResult(self.ref, self.env, self.sha, Status.ROLLED_BACK, held, **kw)
        try:
            record = publish_plan(self.dep, v.plan, self.ref if self.ref == self.env.name else None, run_id)
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

    # -- claims -----------------------------------------------------------------------------
    def settle(self, row: PlanRow, runner: Runner) -> ApplyResult | None:
        """Deal with the run that holds the claim on this commit: join it (a waiting caller waits
        for its conclusion), conclude what it left, or release it if it died. None: plan again."""
        while True:
            live, why = liveness(row, runner.run_state(row.plan_id))
            if live == Liveness.DEAD:
                with self.dep.catalog() as cat:
                    released = cat.release_plan(row.plan_id, why)
                if released:
                    progress.emit("released", self.env.name, why)
                return None
            if live == Liveness.FINISHED:
                with self.dep.catalog() as cat:
                    stored = cat.plan(row.plan_id)
                if stored is None:
                    return None
                state = runner.run_state(row.plan_id)
                error = "the run failed (see its logs in Dagster)" if state == "failure" else None
                if error and row.trigger != Trigger.UI:
                    # the plan job concludes even a failed build: a run that did not died (killed,
                    # lost its worker); planned again, unless that keeps happening to this commit
                    with self.dep.catalog() as cat:
                        again = cat.released_count(row.env, row.commit) < MAX_RELEASES
                        if again and cat.release_plan(row.plan_id, f"{why} (its run died); planned again"):
                            return None
                result = _Lifecycle(self.dep, row.env, self.env, row.commit, self.s, row.trigger).conclude(
                    stored, row.plan_id, row.run_id, error
                )
                if result is None or result.status == Status.BUILDING or not row.trigger.publishes:
                    return None  # a partial run, checks not run yet, a build only: plan again
                return self._joined(result, row) if self.trigger.publishes else result
            joined = f"{row.trigger.label}'s run{' ' + row.run_id if row.run_id else ''}"
            if not runner.synchronous:
                return ApplyResult(self.ref, self.env, self.sha, Status.BUILDING, why, joined=joined)
            progress.emit("joined", self.env.name, f"waiting: {why}")
            row = self._wait(row, runner)
            if row.state == PlanState.RELEASED:
                return None
            if row.state == PlanState.CONCLUDED:
                with self.dep.catalog() as cat:
                    stored = cat.plan(row.plan_id)
                done = ApplyResult.concluded(row, stored)
                if (row.trigger.publishes or not self.trigger.publishes) and done.status != Status.BUILDING:
                    return self._joined(done, row)
                return None  # a `build` ended (or a partial run): plan again, reusing what it built

    def _wait(self, row: PlanRow, runner: Runner) -> PlanRow:
        """Poll the claim until it is no longer active, or its run looks dead."""
        while row.state.active:
            with warehouse_turn(self.dep.warehouse) as turn:
                turn.close()  # never hold the warehouse while waiting for the run that needs it
            time.sleep(JOIN_POLL_SECONDS)
            with self.dep.catalog() as cat:
                fresh = cat.plan_row(row.plan_id)
            if fresh is None:
                return row
            row = fresh
            if row.state.active and liveness(row, runner.run_state(row.plan_id))[0] == Liveness.DEAD:
                return row
        return row

    def _joined(self, result: ApplyResult, row: PlanRow) -> ApplyResult:
        result.ref, result.env = self.ref, self.env
        result.joined = f"{row.trigger.label}'s run{' ' + row.run_id if row.run_id else ''}"
        return result

    # -- the loop ---------------------------------------------------------------------------
    def apply(self, runner: Runner, rebuild: frozenset[str], retry_final: bool, full: bool) -> ApplyResult:
        dep, env, sha = self.dep, self.env, self.sha
        with dep.catalog() as cat:
            held = cat.ref_statuses().get(env.name)
        if held is not None and held.commit == sha:
            # a rollback holds until the branch moves, for every trigger that publishes (schedules too;
            # a run that was under way when it came is held at its conclusion)
            if held.status == Status.ROLLED_BACK and self.trigger.publishes:
                return ApplyResult(self.ref, env, sha, held.status, held.reason)
            if held.status.final and not retry_final and not rebuild:
                return ApplyResult(self.ref, env, sha, held.status, held.reason)
        try:
            dep.project(sha)
        except ProjectError as exc:
            return self.result(Status.INVALID, str(exc), error=exc)
        for _ in range(10):  # each pass: another entry point's claim was settled, plan again
            with dep.catalog() as cat:
                row = cat.active_plan(env.name, sha)
            if row is not None:
                settled = self.settle(row, runner)
                if settled is not None:
                    return settled
            plan = dep.plan(sha, env, rebuild, full=full)
            if not plan.has_work or plan.failures():  # reused builds already failed their blocking checks
                result = self.conclude(plan, None, None, None)
                assert result is not None
                if result.status == Status.PUBLISHED:
                    runner.record(result)
                return result
            plan_id = uuid.uuid4().hex[:12]
            owner = str(Owner.current()) if runner.synchronous else None
            with dep.catalog() as cat:
                row = cat.claim(plan_id, plan, self.trigger, owner)
            if row.plan_id != plan_id:
                continue  # another entry point claimed it first: settle that one
            return self._execute(runner, plan, plan_id)
        raise GitopsError(f"{env.name}@{sha[:10]}: claimed and released ten times in a row; try again")

    def _execute(self, runner: Runner, plan: Plan, plan_id: str) -> ApplyResult:
        detail = f"{len(plan.to_build)} to build, {len(plan.to_audit)} to re-audit"
        self.result(Status.BUILDING, detail)
        try:
            execution = runner.execute(plan, plan_id, self.trigger)
        except BaseException as exc:
            with self.dep.catalog() as cat:
                cat.release_plan(plan_id, f"its run was interrupted: {exc!r}")
            raise
        if not execution.done:
            return ApplyResult(
                self.ref, self.env, self.sha, Status.BUILDING, detail, plan, request=execution.request
            )
        with self.dep.catalog() as cat:
            row = cat.plan_row(plan_id)
        if row is not None and row.state == PlanState.CONCLUDED:  # the run concluded it: read how
            done = ApplyResult.concluded(row, plan)
            done.ref, done.env = self.ref, self.env
            return done
        # the run ended before concluding (it crashed): conclude from what it left
        result = self.conclude(plan, plan_id, execution.run_id, execution.error or "the run crashed")
        if result is None:
            raise GitopsError(f"plan {plan_id} was concluded elsewhere; see `gitops-data status`")
        return result


def apply(
    dep: Deployment,
    ref: str,
    runner: Runner,
    *,
    env_name: str | None = None,
    trigger: Trigger = Trigger.SYNC,
    rebuild: frozenset[str] = frozenset(),
    retry_final: bool = True,
    full: bool = False,
) -> ApplyResult:
    """Bring the environment of `ref` to the commit `ref` points at, as far as its checks allow
    (`Trigger.BUILD`: build and audit it, publish nothing).

    `retry_final=False` (the sensor) leaves a head that is blocked, failed or invalid alone until the
    branch moves; the CLI retries it. `rebuild` forces new builds of those models (a refresh)."""
    with warehouse_turn(dep.warehouse):  # one connection from plan to publish, shared with the run
        sha = dep.resolve(ref)
        settings = read_settings(GitTree(dep.repo, sha))  # only the settings: cheap, even for an invalid head
        env = dep.environment(env_name or ref, settings)
        return _Lifecycle(dep, ref, env, sha, settings, trigger).apply(runner, rebuild, retry_final, full)


def apply_all(dep: Deployment, heads: dict[str, str], runner: Runner) -> list[ApplyResult]:
    """One pass over all tracked refs (the Git-ref sensor): apply each head that is not served yet,
    and drop the environments of deleted branches."""
    with warehouse_turn(dep.warehouse):
        return _apply_all(dep, heads, runner)


def _apply_all(dep: Deployment, heads: dict[str, str], runner: Runner) -> list[ApplyResult]:
    s = dep.settings
    with dep.catalog() as cat:
        envs = cat.environments()
        # an environment serving a build marked invalid (changed outside Git) must be re-planned
        stale = {sb.env for sb in cat.served() if sb.invalid_reason is not None}
        statuses = cat.ref_statuses()
        checkouts = set(cat.checkouts())  # environments that follow no branch: never dropped here
        active = cat.active_plans()
    open_at_head = set()
    for row in active:
        if heads.get(row.env) == row.commit:
            open_at_head.add(row.env)
            continue
        with dep.catalog() as cat:
            if row.trigger.publishes:  # plans of commits that are no longer a head never publish now
                cat.conclude_plan(row.plan_id, Status.SUPERSEDED, "its branch moved on (or is gone)")
            elif (live := liveness(row, runner.run_state(row.plan_id)))[0] == Liveness.DEAD:
                cat.release_plan(row.plan_id, live[1])  # a `build` of another commit whose run died
    out = []
    for ref, sha in sorted(heads.items(), key=lambda kv: kv[0] != s.production_ref):
        env = dep.environment(ref)
        published = envs[ref].commit if ref in envs else None
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
            out.append(apply(dep, ref, runner, trigger=Trigger.GIT, retry_final=False))
        except GitopsError as exc:
            out.append(ApplyResult(ref, env, sha, Status.FAILED, str(exc), error=exc))
    for env_name in sorted((set(envs) | set(statuses)) - set(heads) - {s.production_ref} - checkouts):
        schema = envs[env_name].schema if env_name in envs else statuses[env_name].schema
        with dep.catalog() as cat:
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


def start_run(dep: Deployment, plan_id: str, run_id: str) -> Plan:
    """The plan the run `run_id` is to execute, marked as executed by this process (so a killed run
    is told from a live one). A plan that no longer claims its commit is not executed again."""
    with dep.catalog() as cat:
        if not cat.start_plan(plan_id, run_id, str(Owner.current())):
            row = cat.plan_row(plan_id)
            if row is None:
                raise GitopsError(f"plan {plan_id} is not in the catalog {cat.meta}.plans")
            raise GitopsError(f"plan {plan_id} is {row.state} ({row.reason}); this run has nothing to do")
        plan = cat.plan(plan_id)
    assert plan is not None
    return plan


def conclude_run(dep: Deployment, plan_id: str, run_id: str | None, error: str | None) -> ApplyResult | None:
    """Gate and publish a stored plan at the end of the run that executed it, whatever its trigger
    (a `build`: gate only). None if the plan is gone or no longer open (superseded, released)."""
    with dep.catalog() as cat:
        row = cat.plan_row(plan_id)
        plan = cat.plan(plan_id) if row is not None and row.state == PlanState.OPEN else None
    if row is None or plan is None:
        return None
    s = dep.project(plan.commit).settings
    lc = _Lifecycle(dep, plan.env, Environment(plan.env, plan.schema), plan.commit, s, row.trigger)
    return lc.conclude(plan, plan_id, run_id, error)


def conclude_if_complete(dep: Deployment, plan_id: str, run_id: str) -> ApplyResult | None:
    """A run started from the UI has no last step of ours: each of its steps calls this, and the
    first that finds every build of the plan made and every blocking check of them run (or one
    failed) concludes the plan, as the plan job's run does. None while work is left (a partial
    selection: the next tick plans what is missing) or when another step or process concluded it."""
    with dep.catalog() as cat:
        row = cat.plan_row(plan_id)
        plan = cat.plan(plan_id) if row is not None and row.state == PlanState.OPEN else None
        if plan is None:
            return None
        ids = [m.build.build_id for m in plan.models.values() if m.build is not None]
        verdict = gate(plan, cat.existing_builds(plan.internal_schema, ids), cat.latest_audits(ids))
    if not verdict.failures and (verdict.missing or verdict.not_run):
        return None
    return conclude_run(dep, plan_id, run_id, None)


def plan_for_run(dep: Deployment, plan_id: str, env: Environment, sha: str) -> Plan:
    """The plan of a run started without one ("Materialize" in the UI), made for `env` at `sha` and
    stored under the run's plan id. It claims nothing (the run is under way already); the run's step
    that completes it concludes it (conclude_if_complete), else whoever meets it when the run has
    ended, holds respected."""
    plan = dep.plan(sha, env)
    with dep.catalog() as cat:
        cat.claim(plan_id, plan, Trigger.UI, None)
    return plan
