"""Housekeeping jobs: garbage collection of builds, as a Dagster job on a schedule."""

import os

import dagster as dg

from gitops_data.orchestration.resources import GitopsResource
from gitops_data.warehouse.inspect import collect_garbage


@dg.op(description="Drop builds that no environment serves and no retained publish needs.")
def collect_builds(context: dg.OpExecutionContext, gitops: GitopsResource) -> dg.Output:
    ws = gitops.workspace
    settings = ws.settings
    with ws.catalog() as cat:
        report = collect_garbage(cat, settings)
    for b in report.dropped:
        context.log.info(f"dropped {settings.internal_schema}.{b.table}")
    return dg.Output(
        None, metadata={"dropped": len(report.dropped), "kept": report.kept, "orphans": report.orphans}
    )


@dg.job(name="gitops_gc", executor_def=dg.in_process_executor, description="gitops-data gc")
def gc_job():
    collect_builds()


gc_schedule = dg.ScheduleDefinition(
    name="gitops_gc_daily",
    job=gc_job,
    cron_schedule=os.environ.get("GITOPS_DATA_GC_CRON", "0 3 * * *"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
