"""Case 5: publish / promote / rollback of 200 views, at two table sizes, vs a raw transaction of
200 `CREATE OR REPLACE VIEW`.

The catalog is crafted (no Dagster run): two commits A and B, each with 200 builds. To keep the
large size affordable, the 200 builds of a commit share a few distinct physical tables (the same
structure at both sizes, so rows per table is the only thing that changes between them).
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.data import wide_select
from bench.measure import step
from bench.report import Row

ID = "5"
TITLE = "publish 200 views"
INTERNAL, META, EXTERNAL, RAW = "gitops_internal", "gitops_meta", "analytics", "raw_views"
COMMITS = {"A": "a" * 40, "B": "b" * 40}
COLUMNS = {"id": "BIGINT", "k": "UBIGINT", "s": "VARCHAR"}


def prepare(warehouse: Path, rows: int, views: int, tables: int) -> None:
    """Physical tables, and 200 catalog builds per commit pointing at them (round robin)."""
    import duckdb

    from gitops_data.engines.duckdb import DuckDBEngine
    from gitops_data.plan import BuildRecord
    from gitops_data.warehouse.catalog import Catalog, now

    warehouse.unlink(missing_ok=True)
    con = duckdb.connect(str(warehouse))
    cat = Catalog(DuckDBEngine(con), META)
    con.execute(f"create schema {INTERNAL}")
    per_commit = max(tables // 2, 1)
    for label, commit in COMMITS.items():
        names = [f"wide_{label.lower()}{k}" for k in range(per_commit)]
        for name in names:
            con.execute(f"create table {INTERNAL}.{name} as {wide_select(rows)}")
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
    con.close()


def _targets(cat) -> dict:
    """Per commit, what a ready plan of it publishes: model -> (build id, physical table)."""
    from gitops_data.warehouse.publish import PublishTarget

    builds = sorted(cat.builds(), key=lambda b: b.model)
    return {
        label: PublishTarget(
            "main", EXTERNAL, commit, {b.model: (b.build_id, b.table) for b in builds if b.commit == commit}
        )
        for label, commit in COMMITS.items()
    }


def ours(warehouse: str, repeats: int) -> dict:
    """publish_builds() as publish_plan does it: open the warehouse (lock + connect) and its catalog,
    publish, close."""
    from gitops_data.engines import open_warehouse
    from gitops_data.warehouse.catalog import Catalog
    from gitops_data.warehouse.publish import publish_builds

    with open_warehouse(warehouse) as engine:
        targets = _targets(Catalog(engine, META))
    inner: list[float] = []

    def flip(label: str) -> dict:
        with step(f"publish_{label}") as m, open_warehouse(warehouse) as engine:
            t0 = time.perf_counter()
            record = publish_builds(Catalog(engine, META), targets[label], INTERNAL)
            inner.append(time.perf_counter() - t0)
        m["changed"] = len(record.changed)
        return m

    return _sequence(flip, repeats) | {"publish_call_seconds": inner}


def raw(warehouse: str, repeats: int) -> dict:
    """The same view flips as one hand-written transaction on a plain DuckDB connection."""
    import duckdb

    con = duckdb.connect(warehouse)
    tables = {
        label: con.execute(
            f"select model, table_name from {META}.builds where commit = ? order by model", [commit]
        ).fetchall()
        for label, commit in COMMITS.items()
    }
    con.close()

    def flip(label: str) -> dict:
        with step(f"raw_{label}") as m:
            con = duckdb.connect(warehouse)
            con.execute("begin")
            con.execute(f"create schema if not exists {RAW}")
            for model, table in tables[label]:
                con.execute(f"create or replace view {RAW}.{model} as select * from {INTERNAL}.{table}")
            con.execute("commit")
            con.close()
        m["changed"] = len(tables[label])
        return m

    return _sequence(flip, repeats)


def _sequence(flip, repeats: int) -> dict:
    """First publish of A, then alternately promote B / roll back to A, `repeats` times each."""
    import statistics

    first = flip("A")
    promote, rollback = [], []
    for _ in range(repeats):
        promote.append(flip("B"))
        rollback.append(flip("A"))

    def summary(runs: list[dict]) -> dict:
        return {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "peak_mb": max(r["peak_mb"] for r in runs),
            "changed": runs[0]["changed"],
        }

    return {"first": first, "promote": summary(promote), "rollback": summary(rollback)}


def _rows_for(size: int, mine: dict, base: dict, letter: iter) -> list[Row]:
    out = []
    for step_name, label in (
        ("first", "first publish"),
        ("promote", "promote (A->B)"),
        ("rollback", "rollback (B->A)"),
    ):
        o, b = mine[step_name], base[step_name]
        notes = (
            "median of the repeats"
            if step_name != "first"
            else (
                "ours: lock + connect + publish_builds() + close (as publish_plan); baseline: connect + "
                f"{o['changed']} CREATE OR REPLACE VIEW in one transaction + close"
            )
        )
        out.append(
            Row(
                f"{ID}{next(letter)}",
                f"{label}, {o['changed']} views, {size:,} rows/table",
                o["seconds"],
                b["seconds"],
                ours_mb=o["peak_mb"],
                baseline_mb=b["peak_mb"],
                notes=notes,
            )
        )
    return out


def run(ctx) -> list[Row]:
    s = ctx.sizes
    rows, letters, flips, folder = [], iter("abcdefgh"), {}, ctx.fresh("publish")
    for size in s.publish_rows:
        warehouse = folder / f"publish_{size}.duckdb"
        t0 = time.perf_counter()
        prepare(warehouse, size, s.publish_views, s.publish_big_tables)
        prepared = time.perf_counter() - t0
        mine = ctx.child("cases.publish:ours", warehouse=str(warehouse), repeats=s.repeats)
        base = ctx.child("cases.publish:raw", warehouse=str(warehouse), repeats=s.repeats)
        rows += _rows_for(size, mine, base, letters)
        flips[size] = (mine, prepared, warehouse.stat().st_size / 2**20)
    (small, (m_small, _, mb_small)), (large, (m_large, prep, mb_large)) = sorted(flips.items())
    flip_small = (m_small["promote"]["seconds"] + m_small["rollback"]["seconds"]) / 2
    flip_large = (m_large["promote"]["seconds"] + m_large["rollback"]["seconds"]) / 2
    rows.append(
        Row(
            f"{ID}{next(letters)}",
            f"flip time {large:,} vs {small:,} rows/table",
            flip_large,
            flip_small,
            target="<= 1.1x",
            limit=1.1,
            notes=f"mean of promote+rollback medians ({s.repeats} each); {s.publish_big_tables} distinct "
            f"physical tables behind the 400 builds; files {mb_small:.0f} MB vs {mb_large:.0f} MB "
            f"(made in {prep:.0f} s)",
        )
    )
    return rows
