"""Case pg5: flip 200 views on PostgreSQL (publish / promote / rollback, as case 5) through
gitops-data's publish path vs a raw transaction of 200 DROP VIEW + CREATE VIEW; then the same flips
while 4 reader processes query the views in a loop: the readers' worst wait, errors and mixed commits.

The catalog is crafted as in case 5: two commits A and B, 200 builds each, sharing a few physical
tables. Every table of commit A has `tag = 'A'`, of B `tag = 'B'`, so a reader query that reads several
views at once sees one tag, or a mix of commits.
"""

from __future__ import annotations

import statistics
import time

from bench import pg
from bench.measure import step
from bench.readers import describe, problems, readers
from bench.report import Row

ID = "pg5"
TITLE = "PostgreSQL: publish 200 views"
ENGINE = "postgres"
INTERNAL, META, EXTERNAL, RAW = "gitops_internal", "gitops_meta", "analytics", "raw_views"
COMMITS = {"A": "a" * 40, "B": "b" * 40}
COLUMNS = {"id": "bigint", "k": "bigint", "s": "text", "tag": "text"}
READERS = 4
SAMPLED = 8  # views each reader query reads, spread from the first to the last one published
TARGET = 0.3  # seconds for one flip of 200 views


def table_select(rows: int, tag: str) -> str:
    return (
        f"select i::bigint as id, (i * 7919) % 1000 as k, 'x' || (i % 100) as s, '{tag}'::text as tag "
        f"from generate_series(0, {rows - 1}) as g(i)"
    )


def reader_sql(schema: str, views: int, reverse: bool = False) -> str:
    """min(tag), max(tag) over SAMPLED views in one statement: equal unless it saw two commits. The
    views are named in the order a publish replaces them (by model name), or with `reverse` the
    opposite one (PostgreSQL takes a statement's locks in the order it names the views)."""
    picks = sorted({round(i * (views - 1) / (SAMPLED - 1)) for i in range(SAMPLED)}, reverse=reverse)
    parts = " union all ".join(f"(select tag from {schema}.m{i:03d} limit 1)" for i in picks)
    return f"select min(tag), max(tag) from ({parts}) as t"


def prepare(url: str, rows: int, views: int, tables: int) -> None:
    """Physical tables, and `views` catalog builds per commit pointing at them (round robin)."""
    from gitops_data.engines import open_warehouse
    from gitops_data.plan import BuildRecord
    from gitops_data.warehouse.catalog import Catalog, now

    with open_warehouse(url) as engine:
        cat = Catalog(engine, META)
        engine.create_schema(INTERNAL)
        per_commit = max(tables // 2, 1)
        for label, commit in COMMITS.items():
            names = [f"wide_{label.lower()}{k}" for k in range(per_commit)]
            for name in names:
                engine.execute(f"create table {INTERNAL}.{name} as {table_select(rows, label)}")
            for i in range(views):
                rec = BuildRecord(
                    f"{label.lower()}{i:07d}",
                    f"m{i:03d}",
                    f"{label}{i:063d}",
                    names[i % per_commit],
                    commit,
                    None,
                    rows,
                    now(),
                )
                cat.record_build(rec, "sql", "main", COLUMNS)


def _targets(cat) -> dict:
    from gitops_data.warehouse.publish import PublishTarget

    builds = sorted(cat.builds(), key=lambda b: b.model)
    return {
        label: PublishTarget(
            "main", EXTERNAL, commit, {b.model: (b.build_id, b.table) for b in builds if b.commit == commit}
        )
        for label, commit in COMMITS.items()
    }


def ours(url: str, repeats: int, views: int) -> dict:
    """publish_builds() as publish_plan does it: connect (+ advisory lock), catalog, publish, close."""
    from gitops_data.engines import open_warehouse
    from gitops_data.warehouse.catalog import Catalog
    from gitops_data.warehouse.publish import publish_builds

    with open_warehouse(url) as engine:
        targets = _targets(Catalog(engine, META))
    inner: list[float] = []

    def flip(label: str, phase: str) -> dict:
        with step(f"pg_publish_{phase}_{label}") as m, open_warehouse(url) as engine:
            t0 = time.perf_counter()
            record = publish_builds(Catalog(engine, META), targets[label], INTERNAL)
            inner.append(time.perf_counter() - t0)
        m["changed"] = len(record.changed)
        return m

    phases = _phases(flip, repeats, reader_sql(EXTERNAL, views), url)
    with readers(url, reader_sql(EXTERNAL, views, reverse=True), READERS) as stats:
        reverse = flip("B", "reverse")
    return phases | {"reverse": reverse | {"readers": stats}, "publish_call_seconds": inner}


def raw(url: str, repeats: int, views: int) -> dict:
    """The same flips by hand: connect, one transaction of DROP VIEW IF EXISTS + CREATE VIEW per view,
    commit, close."""
    import psycopg

    tables = {
        label: pg.query(
            url, f"select model, table_name from {META}.builds where commit = ? order by model", [commit]
        )
        for label, commit in COMMITS.items()
    }

    def flip(label: str, phase: str) -> dict:
        with step(f"pg_raw_{phase}_{label}") as m:
            con = psycopg.connect(url)
            with con.transaction():
                con.execute(f"create schema if not exists {RAW}")
                for model, table in tables[label]:
                    con.execute(f"drop view if exists {RAW}.{model}")
                    con.execute(f"create view {RAW}.{model} as select * from {INTERNAL}.{table}")
            con.close()
        m["changed"] = len(tables[label])
        return m

    return _phases(flip, repeats, reader_sql(RAW, views), url)


def _phases(flip, repeats: int, sql: str, url: str) -> dict:
    """Quiet: first publish of A, then promote B / roll back to A, `repeats` times each. Busy: the same
    promote / rollback pairs while READERS readers run `sql` in a loop."""
    first = flip("A", "quiet")
    promote, rollback = [], []
    for _ in range(repeats):
        promote.append(flip("B", "quiet"))
        rollback.append(flip("A", "quiet"))
    busy = []
    with readers(url, sql, READERS) as stats:
        for _ in range(repeats):
            busy.append(flip("B", "busy"))
            busy.append(flip("A", "busy"))
    return {
        "first": first,
        "promote": _summary(promote),
        "rollback": _summary(rollback),
        "busy": _summary(busy),
        "readers": stats,
    }


def _summary(runs: list[dict]) -> dict:
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "max_seconds": max(r["seconds"] for r in runs),
        "peak_mb": max(r["peak_mb"] for r in runs),
        "changed": runs[0]["changed"],
        "all_seconds": [r["seconds"] for r in runs],
    }


def run(ctx) -> list[Row]:
    s = ctx.sizes
    try:
        server = pg.server(ctx)
    except pg.NoServer as exc:
        return [Row(ID, TITLE, status="skipped", notes=str(exc))]
    url = pg.database(ctx, "publish")
    rows_per_table = s.publish_rows[0]
    t0 = time.perf_counter()
    prepare(url, rows_per_table, s.publish_views, s.publish_big_tables)
    prepared = time.perf_counter() - t0
    mine = ctx.child("cases.pg_publish:ours", url=url, repeats=s.repeats, views=s.publish_views)
    base = ctx.child("cases.pg_publish:raw", url=url, repeats=s.repeats, views=s.publish_views)
    n = mine["first"]["changed"]
    where = f"PostgreSQL {server['version']} ({server['source']})"
    out = [
        Row(
            f"{ID}a",
            f"PostgreSQL first publish, {n} views",
            mine["first"]["seconds"],
            base["first"]["seconds"],
            ours_mb=mine["first"]["peak_mb"],
            baseline_mb=base["first"]["peak_mb"],
            notes=f"ours: connect + advisory lock + publish_builds() + close (as publish_plan); baseline: "
            f"connect + {n} x (DROP VIEW IF EXISTS + CREATE VIEW) in one transaction + close; {where}; "
            f"{s.publish_big_tables} tables of {rows_per_table:,} rows behind 400 builds (made in "
            f"{prepared:.1f} s)",
        )
    ]
    for key, letter, label in (("promote", "b", "promote (A->B)"), ("rollback", "c", "rollback (B->A)")):
        o, b = mine[key], base[key]
        out.append(
            Row(
                f"{ID}{letter}",
                f"PostgreSQL {label}, {o['changed']} views",
                o["seconds"],
                b["seconds"],
                target=f"<= {TARGET} s",
                limit=TARGET,
                limit_on="ours",
                ours_mb=o["peak_mb"],
                baseline_mb=b["peak_mb"],
                notes=f"median of {s.repeats}; no readers",
            )
        )
    o_stats, b_stats = mine["readers"], base["readers"]
    wrong = problems(o_stats)
    out.append(
        Row(
            f"{ID}d",
            f"PostgreSQL promote / rollback, {n} views, while {READERS} readers query",
            mine["busy"]["seconds"],
            base["busy"]["seconds"],
            ours_mb=mine["busy"]["peak_mb"],
            baseline_mb=base["busy"]["peak_mb"],
            notes=f"median of {2 * s.repeats} flips (slowest: ours {mine['busy']['max_seconds']:.3f} s, "
            f"baseline {base['busy']['max_seconds']:.3f} s); readers: separate processes, each one "
            f"autocommit connection running one query over {SAMPLED} of the views back to back",
        )
    )
    out.append(
        Row(
            f"{ID}e",
            f"readers' worst wait during those flips ({READERS} readers)",
            o_stats["max_wait"],
            b_stats["max_wait"],
            target="0 errors, 0 mixed",
            status="error" if wrong else "ok",
            notes=("FAILED: " + wrong + "; " if wrong else "")
            + f"ours: {describe(o_stats)}; baseline: {describe(b_stats)}",
            details={"ours_readers": o_stats, "baseline_readers": b_stats},
        )
    )
    r_stats = mine["reverse"]["readers"]
    out.append(
        Row(
            f"{ID}f",
            f"reader errors: {READERS} readers name the views in the opposite order",
            r_stats["errors"],
            unit="errors",
            target="0",
            limit=0,
            limit_on="ours",
            ours_mb=mine["reverse"]["peak_mb"],
            status="error" if r_stats["errors"] else "ok",
            notes=("FAILED: readers got errors; " if r_stats["errors"] else "")
            + f"one promote (ours only) took {mine['reverse']['seconds']:.2f} s; {describe(r_stats)}",
            details={"readers": r_stats, "flip_seconds": mine["reverse"]["seconds"]},
        )
    )
    return out
