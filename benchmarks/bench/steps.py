"""Child-process steps shared by several cases (run through child.py)."""

from __future__ import annotations

import os


def instance(home: str):
    """The Dagster instance of a DAGSTER_HOME, as the CLI gets it (created before any measurement)."""
    os.environ["DAGSTER_HOME"] = home
    import dagster as dg

    return dg.DagsterInstance.get()


def query(warehouse: str, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of one read-only query on a warehouse: a DuckDB file or a PostgreSQL URL."""
    if warehouse.startswith(("postgresql://", "postgres://")):
        from bench.pg import query as pg_query

        return pg_query(warehouse, sql, params)
    import duckdb

    con = duckdb.connect(warehouse, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def sync_ref(
    repo: str,
    warehouse: str,
    home: str,
    ref: str = "main",
    name: str | None = None,
    rebuild: list[str] | None = None,
    readers: int = 0,
    reader_sql: str = "",
) -> dict:
    """One measured sync of `ref`, as `gitops-data sync` does it: `apply` with an in-process Dagster
    run (imports, the instance and the executor are set up first); `name` names the step's profile
    (default `sync_<ref>`); `rebuild` forces a refresh of those models, as a scheduled run does.
    With `readers`, that many processes run `reader_sql` in a loop during the sync (bench/readers.py;
    their summary is under "readers"). Raises, like the CLI, if the commit was not published."""
    import git  # noqa: F401  (GitPython, imported on first use by gitops_data: setup, like the others)

    from bench.measure import step
    from bench.readers import readers as reading
    from gitops_data.deployment.apply import apply
    from gitops_data.deployment.core import Deployment
    from gitops_data.orchestration.run import InProcessExecutor

    inst = instance(home)
    ws = Deployment(repo, warehouse)
    executor = InProcessExecutor(ws, inst)

    with (
        reading(warehouse, reader_sql, readers) as reader_stats,
        step(name or f"sync_{ref.replace('/', '_')}") as m,
    ):
        result = apply(ws, ref, executor, rebuild=frozenset(rebuild or ())).raise_for_status()
    built = query(warehouse, "select model from gitops_meta.builds where run_id = ?", [result.run_id])
    return {
        **m,
        "status": str(result.status),
        "built": sorted(r[0] for r in built),
        "changed": list(result.publish.changed) if result.publish else [],
        "builds_total": query(warehouse, "select count(*) from gitops_meta.builds")[0][0],
        "readers": reader_stats,
    }
