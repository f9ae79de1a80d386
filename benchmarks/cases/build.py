"""Case 1: first build of a 20-model SQL DAG over a parquet source: `sync` (plan, Dagster run,
publish) vs the same CREATE TABLE AS statements run directly in one DuckDB connection."""

from __future__ import annotations

from bench.dag import MODELS, SOURCE, SOURCE_PATH, built_dag
from bench.measure import step
from bench.report import Row
from bench.steps import query

ID = "1"
TITLE = "build: 20-model SQL DAG"


def baseline(warehouse: str, parquet: str) -> dict:
    import duckdb

    with step("build_baseline") as m:
        con = duckdb.connect(warehouse)
        con.execute(f"create table {SOURCE} as select * from read_parquet('{parquet}')")
        for name, sql in MODELS:
            con.execute(f"create table {name} as {sql}")
        con.close()
    return m


def _same_rows(ours_wh: str, base_wh: str) -> None:
    ours = dict(query(ours_wh, "select model, row_count from gitops_meta.builds"))
    base = {name: query(base_wh, f"select count(*) from {name}")[0][0] for name, _ in [(SOURCE, ""), *MODELS]}
    wrong = {n: (ours.get(n), base[n]) for n in base if ours.get(n) != base[n]}
    if wrong:
        raise AssertionError(f"row counts differ between ours and the baseline: {wrong}")


def run(ctx) -> list[Row]:
    sc, ours = built_dag(ctx)
    base_wh = ctx.fresh("build_baseline") / "baseline.duckdb"
    base = ctx.child("cases.build:baseline", warehouse=str(base_wh), parquet=str(sc.repo.path / SOURCE_PATH))
    _same_rows(str(sc.warehouse), str(base_wh))
    return [
        Row(
            ID,
            f"{TITLE}, {ctx.sizes.dag_rows:,} rows, first sync",
            ours["seconds"],
            base["seconds"],
            target="<= 1.3x",
            limit=1.3,
            ours_mb=ours["peak_mb"],
            baseline_mb=base["peak_mb"],
            notes=f"{len(ours['built'])} builds in one Dagster run; same row counts as the baseline; "
            "no checks declared (audits: case 4)",
        )
    ]
