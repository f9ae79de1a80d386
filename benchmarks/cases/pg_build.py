"""Case pg1: first build of the 20-model SQL DAG on PostgreSQL: `sync` (plan, Dagster run, publish)
into a throwaway database vs the same CREATE TABLE AS statements sent directly with psycopg.

Same data: both sides load the same parquet file. The baseline reads it with DuckDB into Arrow and
bulk-loads it with ADBC (binary COPY), as gitops-data's engine does, then runs each model's SQL as
gitops-data sends it to PostgreSQL (transpiled from DuckDB's dialect by sqlglot)."""

from __future__ import annotations

import time

from bench import pg
from bench.dag import PORTABLE_MODELS, SOURCE, SOURCE_PATH, built_pg_dag
from bench.measure import step
from bench.report import Row
from bench.steps import query

ID = "pg1"
TITLE = "PostgreSQL build: 20-model SQL DAG"
ENGINE = "postgres"


def statements() -> list[tuple[str, str]]:
    """(model, SELECT in PostgreSQL's dialect): what gitops-data sends, with plain table names."""
    from gitops_data.sql import parse_query, rewrite

    return [(name, rewrite(parse_query(sql), {}, "postgres")) for name, sql in PORTABLE_MODELS]


def baseline(url: str, parquet: str) -> dict:
    import adbc_driver_postgresql.dbapi as adbc
    import duckdb
    import psycopg

    sqls = statements()
    with step("pg_build_baseline") as m:
        t0 = time.perf_counter()
        reader = duckdb.connect()
        arrow = reader.sql(f"select * from read_parquet('{parquet}')").to_arrow_table()
        reader.close()
        with adbc.connect(url, autocommit=True) as bulk, bulk.cursor() as cur:
            cur.adbc_ingest(SOURCE, arrow, mode="create")
        del arrow
        m["load_seconds"] = time.perf_counter() - t0
        with psycopg.connect(url, autocommit=True) as con:
            for name, sql in sqls:
                con.execute(f"create table {name} as {sql}")
    m["ctas_seconds"] = m["seconds"] - m["load_seconds"]
    return m


def _same_rows(ours_url: str, base_url: str) -> None:
    ours = dict(query(ours_url, "select model, row_count from gitops_meta.builds"))
    names = [SOURCE, *(n for n, _ in PORTABLE_MODELS)]
    base = {name: query(base_url, f"select count(*) from {name}")[0][0] for name in names}
    wrong = {n: (ours.get(n), base[n]) for n in base if ours.get(n) != base[n]}
    if wrong:
        raise AssertionError(f"row counts differ between ours and the baseline: {wrong}")


def run(ctx) -> list[Row]:
    try:
        server = pg.server(ctx)
    except pg.NoServer as exc:
        return [Row(ID, TITLE, status="skipped", notes=str(exc))]
    sc, ours = built_pg_dag(ctx)
    base_url = pg.database(ctx, "build_baseline")
    base = ctx.child("cases.pg_build:baseline", url=base_url, parquet=str(sc.repo.path / SOURCE_PATH))
    _same_rows(str(sc.warehouse), base_url)
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
            f"baseline: parquet -> Arrow -> ADBC bulk load {base['load_seconds']:.2f} s + 20 CREATE TABLE AS "
            f"{base['ctas_seconds']:.2f} s (psycopg); any_value() -> min() in both; PostgreSQL "
            f"{server['version']} ({server['source']})",
        )
    ]
