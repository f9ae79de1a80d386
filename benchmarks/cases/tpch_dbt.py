"""Case tpchdbt: case tpch's 70 models as a dbt project, tests included (issue 23's "speed at size"),
first build at TPC-H SF 1 (SF 0.1 with --quick).

The project is the one case tpch's dbt side runs (bench/tpch/models.py: `ref()`, `source()`,
`{{ config(materialized=...) }}`) plus one schema.yml per layer with 51 of dbt's generic tests
(bench/tpch/dbt_tests.py), the same files on every side. Sides:
- ours: those files and a `gitops_data.yaml` committed into a data repo, loaded by the dbt loader,
  `sync` (`apply` with an in-process Dagster run): the builds, the tests as blocking checks, publish;
- raw: the same compiled statements straight on DuckDB (the models' CREATE TABLE / CREATE VIEW,
  ephemeral models inlined, and each test's query as dbt compiles it), on as many threads as ours
  builds with (a statement starts once the models it reads exist; one cursor per thread), up to a
  CHECKPOINT;
- dbt: `dbt build` (models and tests) with the same number of threads (full mode, or --with-dbt)."""

from __future__ import annotations

import shutil

from bench.datarepo import dagster_home, init_repo
from bench.measure import step
from bench.report import Row
from bench.sidevenv import Unavailable
from bench.steps import query
from bench.tpch import data, dbt_side
from bench.tpch.dbt_tests import TESTS, schema_files
from bench.tpch.models import EXTERNAL_SCHEMA, built_upstream, dbt_project_files, models, raw_named
from cases.tpch import META, _answers, _compare_rows, _dbt_rows_differ, scale_factor

ID = "tpchdbt"
TITLE = "TPC-H project as a dbt project, tests included"
SETTINGS = f"name: tpch\nexternal_schema: {EXTERNAL_SCHEMA}\n"


def threads() -> int:
    """The threads ours builds with on this machine: the raw and dbt sides get as many."""
    from gitops_data.warehouse.scheduler import run_threads

    return run_threads()


def project(ms, warehouse: str, n_threads: int) -> dict[str, str]:
    """The dbt project (its profile's warehouse is `warehouse`) with its tests' schema.yml files."""
    return {**dbt_project_files(ms, warehouse, n_threads), **schema_files(ms)}


def raw_statements(ms) -> list[dict]:
    """The statements of the raw side: each model's, then each test's, with the models it reads."""
    up = built_upstream(ms)
    out = [{"name": name, "sql": sql, "needs": sorted(up[name])} for name, sql in raw_named(ms)]
    return out + [{"name": t.name, "sql": t.compiled(), "needs": list(t.reads), "test": True} for t in TESTS]


# -- child steps ---------------------------------------------------------------------------------------


def raw_graph(warehouse: str, statements: list[dict], threads: int, count: list[str]) -> dict:
    """Raw DuckDB on `threads` threads along the dependency graph: a statement is submitted once the
    statements of the models it reads are done (in list order among those ready), each thread runs
    on its own cursor of one connection; timed up to a CHECKPOINT. Then the tests' failures (each
    must be 0) and the row counts of `count`."""
    import threading
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    import duckdb

    con = duckdb.connect(warehouse)
    local = threading.local()
    failures: dict[str, int] = {}

    def run(spec: dict) -> None:
        cur = getattr(local, "cursor", None)
        if cur is None:
            cur = local.cursor = con.cursor()
        rows = cur.execute(spec["sql"]).fetchall()
        if spec.get("test"):
            failures[spec["name"]] = rows[0][0]

    try:
        with step("tpchdbt_raw") as m, ThreadPoolExecutor(threads, thread_name_prefix="raw") as pool:
            done: set[str] = set()
            waiting = list(statements)
            running: dict[Future, str] = {}
            while waiting or running:
                ready = [s for s in waiting if set(s["needs"]) <= done]
                for spec in ready:
                    waiting.remove(spec)
                    running[pool.submit(run, spec)] = spec["name"]
                if not running:
                    raise RuntimeError(f"raw statements wait for each other: {[s['name'] for s in waiting]}")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                    done.add(running.pop(future))
            con.execute("checkpoint")
        m["statements"] = len(statements)
        failed = {n: f for n, f in failures.items() if f}
        if failed:
            raise AssertionError(f"raw DuckDB: tests failed: {failed}")
        m["tests_passed"] = len(failures)
        m["rows"] = {n: con.execute(f'select count(*) from "{n}"').fetchone()[0] for n in count}
    finally:
        con.close()
    return m


# -- the sides -----------------------------------------------------------------------------------------


def run_ours(ctx, sources, ms, n_threads: int) -> dict:
    """One sync of main: every built model built, every test run as a passing check."""
    root = ctx.fresh("tpchdbt_ours")
    warehouse = root / "warehouse.duckdb"
    files = {**project(ms, str(warehouse), n_threads), "gitops_data.yaml": SETTINGS}
    repo = init_repo(root / "repo", files)
    home = dagster_home(root / "dagster_home")
    shutil.copy(sources, warehouse)
    result = ctx.child(
        "bench.steps:sync_ref", repo=str(repo.path), warehouse=str(warehouse), home=str(home), name="tpchdbt"
    )
    if result["status"] != "published":
        raise AssertionError(f"sync of main did not publish: {result['status']}")
    built = {m.name for m in ms if m.built}
    if set(result["built"]) != built:
        raise AssertionError(f"first build: expected {len(built)} builds, got {len(result['built'])}")
    audits = query(
        str(warehouse),
        f"select count(*), count(*) filter (where passed) from {META}.audits a "
        f"join {META}.builds b using (build_id) where b.commit = ?",
        [repo.head()],
    )[0]
    if audits != (len(TESTS), len(TESTS)):
        raise AssertionError(f"expected {len(TESTS)} passing checks, got {audits[1]} of {audits[0]}")
    result["tests_passed"] = audits[1]
    result["rows"] = {
        n: query(str(warehouse), f'select count(*) from {EXTERNAL_SCHEMA}."{n}"')[0][0] for n in built
    }
    result["answers"] = _answers(str(warehouse))
    return result


def run_dbt(ctx, folder, ms, n_threads: int) -> tuple[dict | None, str]:
    """dbt's `dbt build`, or None and the reason it did not run."""
    if ctx.quick and not ctx.with_dbt:
        return None, "dbt: not run in --quick mode (add --with-dbt)"
    logs = ctx.folder("logs")
    try:
        python = dbt_side.ensure_venv(logs / "dbt_venv.log")
    except Unavailable as exc:
        return None, f"dbt: cannot install it: {exc}"
    try:
        result = dbt_side.run(
            python,
            ctx.fresh("tpchdbt_dbt"),
            ms,
            folder,
            logs / "tpchdbt_dbt.log",
            extra=schema_files(ms),
            plan_steps=[{"name": "initial", "args": ["build"]}],
            threads=n_threads,
        )
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        return None, f"dbt: failed ({first[:150]}; see logs/tpchdbt_dbt.log)"
    if result["initial"]["tests_passed"] != len(TESTS):
        return None, f"dbt: {result['initial']['tests_passed']} of {len(TESTS)} tests passed, column dropped"
    v = result["versions"]
    return result, (
        f"dbt-core {v['dbt']} + dbt-duckdb {v['dbt_duckdb']} on duckdb {v['duckdb']}, `dbt build`, "
        f"threads {n_threads}"
    )


# -- the case ------------------------------------------------------------------------------------------


def run(ctx) -> list[Row]:
    import duckdb

    sf = scale_factor(ctx)
    logs = ctx.folder("logs")
    try:
        folder, _ = data.parquet_dir(sf, logs / "tpchgen.log")
    except Unavailable as exc:
        return [Row(ID, TITLE, status="skipped", notes=f"skipped: no TPC-H data: {exc}")]
    sources = ctx.fresh("tpchdbt_sources") / "sources.duckdb"
    loaded = ctx.child("bench.tpch.data:load_sources", warehouse=str(sources), folder=str(folder))
    ms = models(sf)
    n_threads = threads()
    built = [m.name for m in ms if m.built]

    raw_warehouse = ctx.fresh("tpchdbt_raw") / "raw.duckdb"
    shutil.copy(sources, raw_warehouse)
    statements = raw_statements(ms)
    raw = ctx.child(
        "cases.tpch_dbt:raw_graph",
        warehouse=str(raw_warehouse),
        statements=statements,
        threads=n_threads,
        count=built,
    )
    ours = run_ours(ctx, sources, ms, n_threads)
    theirs, dbt_note = run_dbt(ctx, folder, ms, n_threads)
    checked = _compare_rows(ours["rows"], raw["rows"], sf, ours["answers"])
    if theirs is not None:
        differ = _dbt_rows_differ(ours["rows"], theirs["rows"])
        if differ:
            theirs, dbt_note = None, differ
        else:
            checked[0] += " and dbt"
    checked.append(f"all {len(TESTS)} tests pass on every side")
    t = theirs["initial"] if theirs else None
    overhead_ms = (ours["seconds"] - raw["seconds"]) / len(built) * 1000
    notes = (
        f"ours: dbt loader, {len(TESTS)} tests as checks; raw: {len(statements)} statements "
        f"({len(built)} models, {len(TESTS)} tests) on {n_threads} threads along the graph; "
        f"(ours - raw) / {len(built)} models = {overhead_ms:.0f} ms per model; "
        + "; ".join(checked)
        + f"; {dbt_note}; ours on duckdb {duckdb.__version__}"
    )
    return [
        Row(
            f"{ID}-a",
            f"first build + {len(TESTS)} tests, {len(ms)} models as a dbt project, "
            f"SF {sf:g}, {loaded['rows']['lineitem']:,} lineitems",
            ours["seconds"],
            raw["seconds"],
            peer=t["seconds"] if t else None,
            peer_name="dbt",
            ours_mb=ours["peak_mb"],
            baseline_mb=raw["peak_mb"],
            notes=notes,
            details={
                "overhead_ms_per_model": overhead_ms,
                "scale_factor": sf,
                "threads": n_threads,
                "built": ours["built"],
                "dbt": t,
                "peer_mb": t["peak_mb"] if t else None,
            },
        )
    ]
