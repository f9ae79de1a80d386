"""Case 6: storage growth. N commits, each changing one more of the 20 models (in DAG order, a
change of SQL text that keeps the data), each synced; warehouse size vs after one full build."""

from __future__ import annotations

from bench.dag import MODELS, Scenario, built_dag, models_yaml, wrapped
from bench.datarepo import DataRepo, copy_scenario
from bench.measure import step
from bench.report import Row

ID = "6"
TITLE = "storage"


def database_size(warehouse: str) -> dict:
    """File bytes, and bytes in used blocks (DuckDB does not shrink the file when tables are dropped)."""
    import os

    import duckdb

    con = duckdb.connect(warehouse, read_only=True)
    try:
        block_size, used, free = con.execute(
            "select block_size, used_blocks, free_blocks from pragma_database_size()"
        ).fetchone()
    finally:
        con.close()
    return {"file": os.path.getsize(warehouse), "used": block_size * used, "free": block_size * free}


def commits_and_gc(repo: str, warehouse: str, home: str, commits: int) -> dict:
    """Run in a child: commit + sync `commits` times, then garbage-collect as the daily schedule does."""
    from datetime import timedelta

    from bench.steps import instance
    from gitops_data.deployment.apply import apply
    from gitops_data.deployment.core import Deployment
    from gitops_data.orchestration.run import InProcessExecutor
    from gitops_data.warehouse.inspect import collect_garbage

    inst, ws, data = instance(home), Deployment(repo, warehouse), DataRepo(repo)
    executor = InProcessExecutor(ws, inst)
    models, per_commit = list(MODELS), []
    with step("storage_syncs") as m:
        for i, (name, _) in enumerate(MODELS[:commits]):
            models = wrapped(models, name, i + 1)
            data.write("models.yml", models_yaml(models))
            data.commit(f"change {name}")
            result = apply(ws, "main", executor).raise_for_status()
            per_commit.append({"model": name, "status": str(result.status), **database_size(warehouse)})
    after = database_size(warehouse)
    settings = ws.production_settings()
    with ws.catalog() as cat:
        report = collect_garbage(cat, settings, dry_run=False, grace=timedelta(0))
        cat.engine.execute("checkpoint")
    return {
        **m,
        "per_commit": per_commit,
        "after": after,
        "after_gc": database_size(warehouse),
        "gc_dropped": len(report.dropped),
    }


def run(ctx) -> list[Row]:
    base, _ = built_dag(ctx)
    commits = ctx.sizes.storage_commits
    sc = Scenario(copy_scenario(base.root, ctx.work / "storage"))
    before = database_size(str(sc.warehouse))
    out = ctx.child("cases.storage:commits_and_gc", commits=commits, **sc.kwargs())
    mb = 2**20
    after, gc = out["after"], out["after_gc"]
    note = f"{commits} commits synced in {out['seconds']:.0f} s; DAG order, so the first rebuilds all 20"
    return [
        Row(
            f"{ID}a",
            f"{TITLE}: file after {commits} one-model commits",
            after["file"] / mb,
            before["file"] / mb,
            unit="MB",
            target="<= 2x",
            limit=2.0,
            ours_mb=out["peak_mb"],
            notes=note + "; no gc",
        ),
        Row(
            f"{ID}b",
            f"{TITLE}: used blocks after gc (retention)",
            gc["used"] / mb,
            before["used"] / mb,
            unit="MB",
            target="<= 2x",
            limit=2.0,
            notes=f"gc (default retention: last 10 publishes; grace 0 instead of 1 h) dropped "
            f"{out['gc_dropped']} builds; file stays {gc['file'] / mb:.0f} MB "
            f"({gc['free'] / mb:.0f} MB free blocks, reused by later builds)",
        ),
    ]
