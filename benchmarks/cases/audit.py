"""Case 4: six column checks on one big model: gitops-data's check runner (declared checks of a
loaded node) vs the same checks hand-written as Polars expressions and as one DuckDB query."""

from __future__ import annotations

from pathlib import Path

from bench.data import facts_select
from bench.measure import step
from bench.report import Row

ID = "4"
TITLE = "audit: 6 column checks"
SCHEMA, TABLE = "gitops_internal", "facts"
KINDS = ["view", "click", "cart", "purchase", "refund"]
PROJECT_YAML = f"""models:
  - name: facts
    sql: select 1 as id
    columns:
      id: {{nullable: false, unique: true}}
      amount: {{checks: [{{ge: 0}}]}}
      kind: {{checks: [{{isin: [{", ".join(KINDS)}]}}]}}
      code: {{checks: [{{str_length: {{min: 2, max: 8}}}}]}}
      score: {{checks: [{{between: [0, 100]}}]}}
"""
KIND_LIST = ", ".join(f"'{k}'" for k in KINDS)
SQL_CHECKS = f"""select count(*) filter (where id is null) as id__not_null,
       count(*) - count(distinct id) as id__unique,
       count(*) filter (where amount < 0) as amount__ge,
       count(*) filter (where kind not in ({KIND_LIST})) as kind__isin,
       count(*) filter (where length(code) not between 2 and 8) as code__str_length,
       count(*) filter (where score not between 0 and 100) as score__between
from {SCHEMA}.{TABLE}"""


def prepare(folder: Path, rows: int) -> tuple[Path, Path]:
    import duckdb

    project = folder / "project"
    (project / "models.yml").parent.mkdir(parents=True, exist_ok=True)
    (project / "gitops_data.yaml").write_text("name: bench_audit\n")
    (project / "models.yml").write_text(PROJECT_YAML)
    warehouse = folder / "audit.duckdb"
    warehouse.unlink(missing_ok=True)
    con = duckdb.connect(str(warehouse))
    con.execute(f"create schema {SCHEMA}")
    con.execute(f"create table {SCHEMA}.{TABLE} as {facts_select(rows)}")
    con.close()
    return project, warehouse


def ours(project: str, warehouse: str) -> dict:
    """The check runner on the declared checks, as a check step runs them: read the table's columns
    once, then run_check for each check (none of them reads another model)."""
    import duckdb

    from gitops_data.audit.runner import run_check
    from gitops_data.engines.duckdb import DuckDBEngine
    from gitops_data.project.checks import declared_checks
    from gitops_data.project.loader import load_project
    from gitops_data.project.tree import DirTree

    checks = declared_checks(load_project(DirTree(project)).nodes["facts"])
    engine = DuckDBEngine(duckdb.connect(warehouse, read_only=True))
    with step("audit_ours") as m:
        columns = engine.columns(SCHEMA, TABLE)
        results = [run_check(engine, SCHEMA, TABLE, chk, columns, {}) for chk in checks]
    engine.close()
    m["checks"] = {r.name: r.failed_rows for r in results}
    m["messages"] = [r.message for r in results if not r.passed]
    return m


def polars(warehouse: str) -> dict:
    import duckdb
    import polars as pl

    con = duckdb.connect(warehouse, read_only=True)
    with step("audit_polars") as m:
        frame = con.sql(f"select id, amount, kind, code, score from {SCHEMA}.{TABLE}").pl()
        out = frame.select(
            pl.col("id").null_count().alias("id__not_null"),
            pl.col("id").is_duplicated().sum().alias("id__unique"),
            (pl.col("amount") < 0).sum().alias("amount__ge"),
            (~pl.col("kind").is_in(KINDS)).sum().alias("kind__isin"),
            (~pl.col("code").str.len_chars().is_between(2, 8)).sum().alias("code__str_length"),
            (~pl.col("score").is_between(0, 100)).sum().alias("score__between"),
        ).row(0, named=True)
    con.close()
    m["checks"] = {k: int(v) for k, v in out.items()}
    return m


def duckdb_sql(warehouse: str) -> dict:
    import duckdb

    con = duckdb.connect(warehouse, read_only=True)
    with step("audit_duckdb") as m:
        cur = con.execute(SQL_CHECKS)
        row = cur.fetchone()
        names = [d[0] for d in cur.description]
    con.close()
    m["checks"] = dict(zip(names, row, strict=True))
    return m


def run(ctx) -> list[Row]:
    rows = ctx.sizes.audit_rows
    project, warehouse = prepare(ctx.fresh("audit"), rows)
    mine = ctx.child("cases.audit:ours", project=str(project), warehouse=str(warehouse))
    pol = ctx.child("cases.audit:polars", warehouse=str(warehouse))
    sql = ctx.child("cases.audit:duckdb_sql", warehouse=str(warehouse))
    for side in (mine, pol, sql):
        if any(side["checks"].values()) or len(side["checks"]) != 6:
            raise AssertionError(
                f"every check should pass on the generated data: {side['checks']} {side.get('messages')}"
            )
    fastest = min((pol, "Polars"), (sql, "DuckDB SQL"), key=lambda s: s[0]["seconds"])
    return [
        Row(
            ID,
            f"{TITLE}, {rows:,} rows",
            mine["seconds"],
            fastest[0]["seconds"],
            target="<= 2x",
            limit=2.0,
            ours_mb=mine["peak_mb"],
            baseline_mb=fastest[0]["peak_mb"],
            notes=f"baseline = faster of Polars {pol['seconds']:.2f} s ({pol['peak_mb']:.0f} MB) and one "
            f"DuckDB query {sql['seconds']:.2f} s ({sql['peak_mb']:.0f} MB); checks: "
            + ", ".join(mine["checks"]),
            details={"polars": pol, "duckdb": sql},
        )
    ]
