"""Case 9: an incremental model. First sync = full build; then 1% new rows arrive, and the sync that
appends them (one segment) is timed against a full rebuild of the same model on the new data.

9a/9b: the source is a parquet file in the repo; the new rows are a rewritten file, committed. The
baselines are the same project without the `incremental` block (a `sync` too), and raw DuckDB (load
the file, CREATE TABLE AS the model). Both syncs reload the whole file (a repo-file source is copied).

9c: the source is an external warehouse table (`table: main.raw_ledger`) that an ingestion tool fills
outside gitops-data; the new rows are an INSERT into it, and the timed step is the scheduled-refresh
path, `apply(..., rebuild={model})`, on the same commit. Baseline: raw DuckDB CREATE TABLE AS of the
model over the whole table, in the same warehouse file."""

from __future__ import annotations

from bench.dag import Scenario
from bench.data import ledger_select, write_ledger_parquet
from bench.datarepo import copy_scenario, dagster_home, init_repo
from bench.measure import step
from bench.report import Row
from bench.steps import query

ID = "9"
TITLE = "incremental"
SOURCE, SOURCE_PATH, MODEL = "ledger", "data/ledger.parquet", "ledger_facts"
EXTERNAL_TABLE = "main.raw_ledger"  # 9c: the source is this warehouse table, filled outside gitops-data
MODEL_SELECT = (
    "select id, user_id, amount, round(amount * 1.19, 2) as gross, kind = 'purchase' as is_purchase, "
    "upper(kind) as kind_code, id % 1000 as bucket from "
)
MODEL_SQL = MODEL_SELECT + SOURCE
META = "gitops_meta"


def project_files(incremental: bool = True, external: bool = False) -> dict[str, str]:
    model = f'  - name: {MODEL}\n    sql: "{MODEL_SQL}"\n'
    if incremental:
        model += "    incremental: {column: id}\n"
    location = f"table: {EXTERNAL_TABLE}" if external else f"path: {SOURCE_PATH}"
    return {
        "gitops_data.yaml": "name: bench_incremental\n",
        "sources.yml": f"sources:\n  - name: {SOURCE}\n    {location}\n",
        "models.yml": "models:\n" + model,
    }


def ingest(warehouse: str, start: int, stop: int) -> None:
    """What an ingestion tool does, outside gitops-data: create the external table with rows
    0 .. stop-1 (start == 0), or INSERT rows start .. stop-1 into it."""
    import duckdb

    con = duckdb.connect(warehouse)
    try:
        if start == 0:
            con.execute(f"create table {EXTERNAL_TABLE} as {ledger_select(stop)}")
        else:
            con.execute(f"insert into {EXTERNAL_TABLE} {ledger_select(stop, start)}")
    finally:
        con.close()


def raw_table_rebuild(warehouse: str) -> dict:
    """9c baseline: a full rebuild in plain DuckDB, in the same warehouse file: CTAS the model over the
    whole external table (into a scratch schema, dropped afterwards, untimed)."""
    import duckdb

    con = duckdb.connect(warehouse)
    try:
        con.execute("create schema bench_raw")
        with step("incremental_raw_table_rebuild") as m:
            con.execute(f"create table bench_raw.{MODEL} as {MODEL_SELECT}{EXTERNAL_TABLE}")
        rows = con.execute(f"select count(*) from bench_raw.{MODEL}").fetchone()[0]
        con.execute("drop schema bench_raw cascade")
    finally:
        con.close()
    return {**m, "rows": rows}


def raw_rebuild(warehouse: str, parquet: str) -> dict:
    """Baseline: what a full rebuild costs in plain DuckDB: load the new file, CTAS the model."""
    import time

    import duckdb

    with step("incremental_raw_rebuild") as m:
        con = duckdb.connect(warehouse)
        con.execute(f"create table {SOURCE} as select * from read_parquet('{parquet}')")
        t0 = time.perf_counter()
        con.execute(f"create table {MODEL} as {MODEL_SQL}")
        model_seconds = time.perf_counter() - t0
        con.close()
    return {**m, "model_seconds": model_seconds}


def published_state(warehouse: str) -> dict:
    """The published build of the model: its segments with their row counts, and the view's rows."""
    segments = query(
        warehouse,
        f"""
        select s.seq, s.table_name, t.schema_name from {META}.segments s
        join {META}.env_views v on v.build_id = s.build_id
        join duckdb_tables() t on t.table_name = s.table_name
        where v.env = 'main' and v.model = ? order by s.seq""",
        [MODEL],
    )
    counts = [
        query(warehouse, f'select count(*) from "{schema}"."{table}"')[0][0] for _, table, schema in segments
    ]
    schema = query(warehouse, f"select schema_name from {META}.environments where env = 'main'")[0][0]
    view_rows = query(warehouse, f'select count(*) from "{schema}"."{MODEL}"')[0][0]
    return {"segment_rows": counts, "view_rows": view_rows}


def run(ctx) -> list[Row]:
    return run_file_source(ctx) + run_external_table(ctx)


def run_file_source(ctx) -> list[Row]:
    rows, added = ctx.sizes.incremental_rows
    sc = Scenario(ctx.fresh("incremental"))
    write_ledger_parquet(sc.repo.path / SOURCE_PATH, rows)
    init_repo(sc.repo.path, project_files())
    dagster_home(sc.home)
    first = ctx.child("bench.steps:sync_ref", ref="main", name="incremental_first_sync", **sc.kwargs())
    if first["status"] != "published" or set(first["built"]) != {SOURCE, MODEL}:
        raise RuntimeError(f"first sync did not build {SOURCE} and {MODEL}: {first}")

    full = Scenario(copy_scenario(sc.root, ctx.work / "incremental_full"))
    for s, message in (
        (sc, f"append {added:,} rows"),
        (full, f"append {added:,} rows; {MODEL} not incremental"),
    ):
        write_ledger_parquet(s.repo.path / SOURCE_PATH, rows + added)
        if s is full:
            s.repo.write("models.yml", project_files(incremental=False)["models.yml"])
        s.repo.commit(message)

    ours = ctx.child("bench.steps:sync_ref", ref="main", name="incremental_second_sync", **sc.kwargs())
    state = published_state(str(sc.warehouse))
    if ours["status"] != "published" or set(ours["built"]) != {SOURCE, MODEL}:
        raise AssertionError(f"second sync should rebuild {SOURCE} and append to {MODEL}: {ours}")
    if (
        len(state["segment_rows"]) != 2
        or state["segment_rows"][-1] != added
        or state["view_rows"] != rows + added
    ):
        raise AssertionError(
            f"expected segments [{rows}, {added}] and {rows + added} rows in the view, got {state}"
        )

    rebuilt = ctx.child(
        "bench.steps:sync_ref", ref="main", name="incremental_full_rebuild_sync", **full.kwargs()
    )
    rebuilt_rows = published_state(str(full.warehouse))["view_rows"]
    if rebuilt["status"] != "published" or rebuilt_rows != rows + added:
        raise AssertionError(
            f"full rebuild: {rebuilt['status']}, {rebuilt_rows} rows (expected {rows + added})"
        )

    raw_wh = ctx.fresh("incremental_raw") / "raw.duckdb"
    raw = ctx.child(
        "cases.incremental:raw_rebuild", warehouse=str(raw_wh), parquet=str(sc.repo.path / SOURCE_PATH)
    )
    if query(str(raw_wh), f"select count(*) from {MODEL}")[0][0] != rows + added:
        raise AssertionError("raw rebuild has the wrong row count")

    name = f"{TITLE}: +{added:,} rows to {rows:,}, second sync"
    checked = (
        f"asserted: new segment {added:,} rows, view {rows + added:,} rows; "
        f"both syncs also reload the {rows + added:,}-row source file (first sync {first['seconds']:.1f} s)"
    )
    details = {
        "first_sync_seconds": first["seconds"],
        "segment_rows": state["segment_rows"],
        "raw_source_load_seconds": raw["seconds"] - raw["model_seconds"],
        "raw_model_ctas_seconds": raw["model_seconds"],
    }
    return [
        Row(
            f"{ID}a",
            f"{name} vs full rebuild (sync)",
            ours["seconds"],
            rebuilt["seconds"],
            target="<< 1x",
            ours_mb=ours["peak_mb"],
            baseline_mb=rebuilt["peak_mb"],
            details=details,
            notes="target: ratio << 1 (no number). Baseline: the same commit with the incremental block "
            f"removed, synced (full rebuild of {MODEL}); {checked}",
        ),
        Row(
            f"{ID}b",
            f"{name} vs raw DuckDB rebuild",
            ours["seconds"],
            raw["seconds"],
            target="<< 1x",
            ours_mb=ours["peak_mb"],
            baseline_mb=raw["peak_mb"],
            details=details,
            notes=f"target: ratio << 1 (no number). Baseline: one DuckDB connection, load the file "
            f"({raw['seconds'] - raw['model_seconds']:.2f} s) + CTAS {MODEL} ({raw['model_seconds']:.2f} s); "
            "ours also reloads the whole file (a repo-file source is copied into a table when it changes)",
        ),
    ]


def run_external_table(ctx) -> list[Row]:
    rows, added = ctx.sizes.incremental_rows
    sc = Scenario(ctx.fresh("incremental_external"))
    ingest(str(sc.warehouse), 0, rows)
    init_repo(sc.repo.path, project_files(external=True))
    dagster_home(sc.home)
    first = ctx.child("bench.steps:sync_ref", ref="main", name="incremental_table_first_sync", **sc.kwargs())
    if first["status"] != "published" or set(first["built"]) != {MODEL}:
        raise RuntimeError(f"first sync did not build {MODEL} (and only it): {first}")

    ingest(str(sc.warehouse), rows, rows + added)
    ours = ctx.child(
        "bench.steps:sync_ref", ref="main", name="incremental_table_refresh", rebuild=[MODEL], **sc.kwargs()
    )
    state = published_state(str(sc.warehouse))
    if ours["status"] != "published" or set(ours["built"]) != {MODEL}:
        raise AssertionError(f"the refresh should append to {MODEL} (and build nothing else): {ours}")
    if (
        len(state["segment_rows"]) != 2
        or state["segment_rows"][-1] != added
        or state["view_rows"] != rows + added
    ):
        raise AssertionError(
            f"expected segments [{rows}, {added}] and {rows + added} rows in the view, got {state}"
        )

    raw = ctx.child("cases.incremental:raw_table_rebuild", warehouse=str(sc.warehouse))
    if raw["rows"] != rows + added:
        raise AssertionError(f"raw rebuild: {raw['rows']} rows (expected {rows + added})")

    details = {
        "first_sync_seconds": first["seconds"],
        "segment_rows": state["segment_rows"],
        "view_rows": state["view_rows"],
    }
    return [
        Row(
            f"{ID}c",
            f"{TITLE}: +{added:,} rows inserted into external table of {rows:,}, scheduled refresh "
            "vs raw DuckDB rebuild",
            ours["seconds"],
            raw["seconds"],
            target="<< 1x",
            ours_mb=ours["peak_mb"],
            baseline_mb=raw["peak_mb"],
            details=details,
            notes=f"target: ratio << 1 (no number). Source `table: {EXTERNAL_TABLE}` (created and appended "
            f"to outside gitops-data); ours: apply(main, rebuild={{{MODEL}}}) on the same commit; baseline: "
            f"CTAS {MODEL} over the {rows + added:,}-row table in the same warehouse file, one connection; "
            f"asserted: new segment {added:,} rows, view {rows + added:,} rows "
            f"(first sync {first['seconds']:.1f} s)",
        ),
    ]
