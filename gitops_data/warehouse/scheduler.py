"""Execute a whole plan: every build step once the builds it reads exist, independent steps at the
same time on worker threads (each on its own sibling connection), and the checks that read other
models once the builds they read exist. The calling thread only schedules; one reporting thread
reports what ended (a Dagster event per build and check, about 20 ms each), so reporting neither
delays the next step nor waits for the SQL."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Literal

from gitops_data.audit.runner import CheckResult
from gitops_data.errors import BuildError
from gitops_data.plan import Action, BuildRecord, CheckState, ModelStep, Plan
from gitops_data.plan.frontier import Frontier
from gitops_data.project.nodes import Project
from gitops_data.warehouse.catalog import Catalog
from gitops_data.warehouse.execute import Built, execute_build, execute_checks
from gitops_data.warehouse.lease import ConnectionLease


@dataclass(frozen=True)
class StepEvent:
    """What happened to one step of a plan run (reported as it happens)."""

    kind: Literal["built", "reused", "checked", "skipped", "failed"]
    step: ModelStep
    build: BuildRecord | None = None
    results: tuple[CheckResult, ...] = ()
    detail: str = ""
    columns: dict[str, str] | None = None  # of a build: column -> type


@dataclass(frozen=True)
class _Outcome:
    events: list[StepEvent]
    error: str | None = None  # the build failed
    stopped: bool = False  # the build failed, or a blocking check did: its downstream is skipped


def run_threads() -> int:
    """How many steps a plan run executes at once (GITOPS_DATA_THREADS; default 2 to 4 by CPUs)."""
    configured = os.environ.get("GITOPS_DATA_THREADS")
    if configured:
        return max(1, int(configured))
    return max(2, min(4, os.cpu_count() or 1))


def _blocking_failure(results: list[CheckResult]) -> bool:
    return any(not r.passed and not r.not_run and r.severity == "error" for r in results)


def _own_and_other_checks(step: ModelStep) -> tuple[list[str], list[str]]:
    """The pending checks of `step` that read only its build, and those that read other models."""
    pending = [c for c in step.checks if c.state == CheckState.PENDING]
    own = [c.name for c in pending if all(r.model == step.name for r in c.reads)]
    return own, [c.name for c in pending if c.name not in own]


def _waits_for(step: ModelStep, names: list[str]) -> frozenset[str]:
    """The builds of this plan that the checks `names` of `step` read (its own build included)."""
    ids = {step.build.build_id} if step.action == Action.BUILD and step.build else set()
    ids |= {r.build_id for c in step.checks if c.name in names for r in c.reads if r.planned and r.build_id}
    return frozenset(ids)


def _build_step(
    cat: Catalog,
    plan: Plan,
    step: ModelStep,
    project: Project,
    run_id: str | None,
    repo: str,
    existing: frozenset[str],
) -> _Outcome:
    """A worker's job: one step's build (when it has one to make), then its own checks."""
    events = []
    made: Built | None = None
    if step.action == Action.BUILD:
        try:
            built = execute_build(cat, plan, step, project.nodes[step.name], run_id, repo, existing)
        except Exception as exc:  # noqa: BLE001 - a build's own error, whatever it is, fails only it
            where = f"model {step.name!r} ({step.location})"
            message = str(exc) if isinstance(exc, BuildError) else f"{where}: {exc!r}"
            return _Outcome([StepEvent("failed", step, detail=message)], message, True)
        build = built.build
        columns = built.columns or cat.engine.columns(plan.internal_schema, build.table)
        events.append(StepEvent("built" if built.written else "reused", step, build, columns=columns))
        made = replace(built, columns=columns)
    own, _ = _own_and_other_checks(step)
    if not own:
        return _Outcome(events)
    results = execute_checks(cat, plan, step, own, run_id, made)
    events.append(StepEvent("checked", step, step.build, tuple(results)))
    return _Outcome(events, stopped=_blocking_failure(results))


def _check_step(cat: Catalog, plan: Plan, step: ModelStep, names: list[str], run_id: str | None) -> _Outcome:
    results = execute_checks(cat, plan, step, names, run_id)
    return _Outcome([StepEvent("checked", step, step.build, tuple(results))])


def run_plan(
    lease: ConnectionLease,
    plan: Plan,
    project: Project,
    run_id: str | None,
    repo: str,
    report: Callable[[StepEvent], None],
    threads: int | None = None,
) -> list[str]:
    """Execute every step of `plan`: each build once the builds it reads exist, then its own pending
    checks; the checks that read other models once the builds they read exist (those whose builds
    were not made, once every build step ended). A build error or a failed blocking check skips the
    steps downstream of it (the commit cannot be published anyway); independent steps go on.
    `report` is called on one reporting thread, in the order steps end, and every report has been
    made when this returns (an error raised by `report` is raised here, before more steps start).
    Returns the errors of failed builds (empty: every build was made)."""
    threads = threads or run_threads()
    frontier = Frontier(plan)
    errors: list[str] = []
    running: dict[Future, tuple[ModelStep, Catalog]] = {}
    unreported: list[StepEvent] = []
    cross = [(s, others) for s in plan.models.values() if (others := _own_and_other_checks(s)[1])]
    planned = [s.build.build_id for s in plan.models.values() if s.action == Action.BUILD and s.build]
    existing: set[str] = set()  # of the planned builds: those made (before, or by this run)
    if planned:
        cat = lease.borrow()  # once, before the steps: concurrent CREATE SCHEMA IF NOT EXISTS conflict
        cat.engine.create_schema(plan.internal_schema)
        existing = cat.existing_builds(plan.internal_schema, planned)
        lease.give_back(cat)
    with (
        ThreadPoolExecutor(1, thread_name_prefix="gitops-report") as reporter,
        ThreadPoolExecutor(threads, thread_name_prefix="gitops-step") as pool,
    ):
        reports: list[Future] = []

        def submit(step: ModelStep, job: Callable[[Catalog], _Outcome]) -> None:
            cat = lease.borrow()
            running[pool.submit(job, cat)] = (step, cat)

        while True:
            giving_way = lease.due  # another process asked for the warehouse: let running steps end
            if giving_way and not running:
                lease.release()
                giving_way = False
            if not giving_way:
                ready, skipped = frontier.take(threads - len(running))
                for step in ready:
                    job = functools.partial(
                        _build_step,
                        plan=plan,
                        step=step,
                        project=project,
                        run_id=run_id,
                        repo=repo,
                        existing=frozenset(existing),
                    )
                    submit(step, job)
                for skip in skipped:
                    detail = f"upstream {', '.join(skip.upstream)} did not pass"
                    unreported.append(StepEvent("skipped", skip.step, detail=detail))
                # a check that reads other models runs once the builds it reads exist; those whose
                # builds were not made wait for every build (then they are skipped or not run)
                for step, names in [c for c in cross if frontier.done or _waits_for(*c) <= existing]:
                    if len(running) >= threads:
                        break
                    cross.remove((step, names))
                    if step.action == Action.BUILD and step.build and step.build.build_id not in existing:
                        # its own build failed or was skipped: nothing to audit, the others still run
                        unreported.append(StepEvent("skipped", step, detail="its build was not made"))
                        continue
                    submit(
                        step, functools.partial(_check_step, plan=plan, step=step, names=names, run_id=run_id)
                    )
            reports.extend(reporter.submit(report, event) for event in unreported)
            unreported = []
            for made in [f for f in reports if f.done()]:  # a report that failed stops the run now
                made.result()
                reports.remove(made)
            if not running:
                if frontier.done and not cross:
                    for made in reports:
                        made.result()
                    return errors
                if not giving_way and not skipped:
                    raise RuntimeError(f"plan {plan.env}@{plan.commit[:10]}: steps wait for each other")
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                step, cat = running.pop(future)
                try:
                    outcome = future.result()
                except BaseException:
                    lease.discard(cat)
                    for other in running:  # a catalog or connection error: stop the run
                        other.cancel()
                    raise
                (lease.discard if outcome.error else lease.give_back)(cat)
                frontier.finish(step.name, outcome.stopped)
                existing.update(e.build.build_id for e in outcome.events if e.build and e.kind != "checked")
                if outcome.error:
                    errors.append(outcome.error)
                unreported.extend(outcome.events)
