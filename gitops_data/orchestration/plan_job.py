"""The plan job: one Dagster run executes a whole stored plan (for the Git-ref sensor, schedules and
the CLI).

It does not depend on the asset graph the code location loaded: the plan comes from the catalog by
the run's `gitops/plan` tag, so a commit made after the location loaded is built without a reload
and without a webserver. Each build is reported as a materialization of the environment's asset and
each check as an asset check evaluation, so the UI shows them per asset; the whole plan is one step,
which also saves Dagster's per-step cost. A run requested by a sensor or schedule then gates and
concludes its plan itself (gate, publish, record, tag), whatever started it: the CLI, which waits
for its run, reads how it concluded.
"""

import dagster as dg

from gitops_data import progress
from gitops_data.deployment.apply import conclude_run, start_run
from gitops_data.deployment.core import Deployment, Environment
from gitops_data.engines import Turn, warehouse_turn
from gitops_data.errors import GitopsError
from gitops_data.orchestration import tags as T
from gitops_data.orchestration.assets import asset_key, check_event, check_metadata, check_severity
from gitops_data.orchestration.materializations import build_metadata, served_reused, size_text
from gitops_data.orchestration.resources import GitopsResource
from gitops_data.plan import Plan
from gitops_data.warehouse.lease import ConnectionLease
from gitops_data.warehouse.scheduler import StepEvent, run_plan

PLAN_JOB = "gitops_plan"
PLAN_OP = "execute_plan"  # the job's one op (its step key)


def _reporter(context: dg.OpExecutionContext, plan: Plan, warehouse: str):
    env = Environment(plan.env, plan.schema)

    def report(ev: StepEvent) -> None:
        name = ev.step.name
        if ev.kind in ("built", "reused"):
            rec = ev.build
            assert rec is not None  # a built or reused step reports its build
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=asset_key(env, name),
                    description=ev.step.reason,
                    metadata=build_metadata(
                        plan, rec, ev.columns or {}, reused=ev.kind == "reused", warehouse=warehouse
                    ),
                )
            )
            progress.emit(ev.kind, name, f"{size_text(rec)} -> {rec.table}")
        elif ev.kind == "checked":
            for r in ev.results:
                # log_event's annotation (UserEvent) omits the AssetCheckEvaluation it handles
                context.log_event(
                    dg.AssetCheckEvaluation(  # type: ignore[arg-type]
                        asset_key=asset_key(env, name),
                        check_name=r.name,
                        passed=r.passed,
                        severity=check_severity(r),
                        description=r.message,
                        metadata=check_metadata(plan, ev.step, r),
                    )
                )
                progress.emit(check_event(r), name, f"{r.name}: {r.message}")
        elif ev.kind == "failed":
            context.log.error(ev.detail)
            progress.emit("failed", name, ev.detail)
        else:
            context.log.warning(f"{name}: skipped: {ev.detail}")
            progress.emit("skipped", name, ev.detail)

    return report


@dg.op(name=PLAN_OP, description="Build and audit every step of the run's plan (tag gitops/plan).")
def execute_plan(context: dg.OpExecutionContext, gitops: GitopsResource) -> None:
    tags = context.run.tags
    plan_id, sha = tags.get(T.PLAN), tags.get(T.COMMIT)
    if not plan_id or not sha:
        raise dg.Failure(
            "this job executes a stored plan: it is started by `gitops-data sync`, the git_refs sensor or a "
            "schedule (run tags gitops/plan and gitops/commit); to build from the UI, materialize assets"
        )
    ws = gitops.workspace
    with warehouse_turn(ws.warehouse) as turn:  # one connection for the whole run
        _execute_plan(context, ws, turn, plan_id, sha)


def _execute_plan(context: dg.OpExecutionContext, ws: Deployment, turn: Turn, plan_id: str, sha: str) -> None:
    try:
        plan = start_run(ws, plan_id, context.run.run_id)
    except GitopsError as exc:
        raise dg.Failure(str(exc)) from None
    context.log.info(f"{plan.env}@{plan.commit[:10]}: {len(plan.to_build)} to build, plan {plan_id}")
    with ConnectionLease(lambda: ws.catalog(), turn) as lease:
        errors = run_plan(
            lease,
            plan,
            ws.project(plan.commit),
            context.run.run_id,
            ws.repo,
            _reporter(context, plan, ws.warehouse),
        )
    # the run that executes a plan concludes it, whatever its trigger
    result = conclude_run(ws, plan_id, context.run.run_id, "; ".join(errors) or None)
    if result is not None:
        context.log.info(f"{plan.env}@{plan.commit[:10]}: {result.status}: {result.detail}")
        context.instance.add_run_tags(context.run.run_id, {T.OUTCOME: result.outcome})
        for event in served_reused(result, context.instance, ws.warehouse):
            context.log_event(event)  # type: ignore[arg-type]  # UserEvent omits AssetCheckEvaluation
    if errors:
        raise dg.Failure(description="; ".join(errors))


@dg.job(name=PLAN_JOB, executor_def=dg.in_process_executor, description="gitops-data: execute one plan")
def plan_job():
    execute_plan()
