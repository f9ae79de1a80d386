"""gitops-data benchmarks: one command, one table.

    python benchmarks/run.py [--quick] [--only 1,3,cli] [--engine duckdb|postgres|all]
                             [--pg-url URL] [--out benchmarks/results] [--with-sqlmesh] [--with-dbt]
                             [--profile]

Generates its own data, runs every case (each measured side in its own child process), prints one
table and writes results.json and results.csv to --out. --quick uses CI-sized data and asserts
nothing about time; a case that crashes or whose correctness assertion fails exits non-zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rich.console import Console  # noqa: E402

import cases  # noqa: E402
from bench import package, pg  # noqa: E402
from bench.context import BENCH_DIR, Ctx  # noqa: E402
from bench.report import Row, show, write  # noqa: E402

console = Console(highlight=False)
MEMORY_METHOD = (
    "peak RSS (VmHWM) of the child process that runs the step, reset via /proc/self/clear_refs "
    "just before the step; includes what the process already had resident (interpreter, imports); "
    "CLI rows: whole-process peak RSS from wait4"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="CI-sized data (seconds, not minutes); no timing asserts"
    )
    p.add_argument(
        "--only", default="", help="comma-separated case ids: " + ",".join(c.ID for c in cases.ALL)
    )
    p.add_argument(
        "--engine",
        default="all",
        choices=[*cases.ENGINES, "all"],
        help="run only the cases on this warehouse engine (default: all)",
    )
    p.add_argument(
        "--pg-url",
        default=None,
        help=f"PostgreSQL server of the postgres cases (default: ${pg.ENV}, else {pg.LOCAL} when it "
        "answers, else a throwaway pgserver); 'pgserver' always starts a throwaway one",
    )
    p.add_argument("--out", default=str(BENCH_DIR / "results"), help="folder for results.json / results.csv")
    p.add_argument(
        "--work", default=None, help="scratch folder (default: a temporary folder, removed afterwards)"
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--with-sqlmesh", action="store_true", help="run case 8 in --quick mode too")
    p.add_argument(
        "--with-dbt", action="store_true", help="run the dbt side of case tpch in --quick mode too"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="run measured steps under pyinstrument; text profiles go to <out>/profiles (slows them down)",
    )
    return p.parse_args(argv)


def selected(only: str, engine: str = "all") -> list:
    chosen = [c for c in cases.ALL if engine == "all" or cases.engine_of(c) == engine]
    if not only:
        return chosen
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    unknown = wanted - {c.ID for c in cases.ALL}
    if unknown:
        raise SystemExit(f"unknown case id(s): {', '.join(sorted(unknown))}")
    picked = [c for c in chosen if c.ID in wanted]
    if not picked:
        raise SystemExit(f"no case among --only {only} runs on engine {engine}")
    return picked


def run_case(case, ctx: Ctx) -> list[Row]:
    t0, load_before = time.perf_counter(), os.getloadavg()[0]
    console.print(f"[bold]case {case.ID}[/]: {case.TITLE} ...")
    try:
        rows = case.run(ctx)
    except Exception as exc:  # one broken case must not hide the others' numbers
        trace = ctx.folder("logs") / f"case_{case.ID}_error.txt"
        trace.write_text(traceback.format_exc())
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        rows = [
            Row(
                case.ID,
                case.TITLE,
                status="error",
                notes=f"{type(exc).__name__}: {first[:200]} (see {trace})",
            )
        ]
    load = max(load_before, os.getloadavg()[0])
    for row in rows:
        row.details["load_average"] = load
        if load > (os.cpu_count() or 1) and row.status == "ok":
            row.notes += f" [busy machine: load average {load:.1f}]"
    console.print(f"  done in {time.perf_counter() - t0:.1f} s (load average {load:.1f})")
    return rows


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:
        return "?"


def _postgres(ctx: Ctx) -> dict | None:
    """The server the PostgreSQL cases ran on (None when none ran), without credentials."""
    found = ctx.cache.get("pg_server")
    if found is None:
        return None
    if isinstance(found, Exception):
        return {"skipped": str(found)}
    return {"source": found["source"], "version": found["version"], "url": pg.redact(found["url"])}


def meta(ctx: Ctx, seconds: float, pkg: dict) -> dict:
    return {
        "mode": "quick" if ctx.quick else "full",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runtime_seconds": round(seconds, 1),
        "sizes": dataclasses.asdict(ctx.sizes),
        "package": pkg,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {
            m: _version(m) for m in ("duckdb", "polars", "dagster", "sqlglot", "pyarrow", "psycopg")
        },
        "postgres": _postgres(ctx),
        "memory": MEMORY_METHOD,
        "profiled": ctx.profile,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = selected(args.only, args.engine)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gitops-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(
        quick=args.quick,
        work=work,
        out=Path(args.out),
        with_sqlmesh=args.with_sqlmesh,
        with_dbt=args.with_dbt,
        profile=args.profile,
        pg_url=args.pg_url,
    )
    pkg = package.freeze(work)
    console.print(
        f"measuring gitops_data from {pkg['source']} (commit {pkg['commit']}"
        f"{', with uncommitted changes' if pkg['uncommitted_changes'] else ''}), copied to {work}/package"
    )
    t0 = time.perf_counter()
    try:
        rows = [row for case in chosen for row in run_case(case, ctx)]
    finally:
        ctx.clean_up(keep=args.keep)  # before `work` goes: a throwaway server's files are in it
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - t0
    pkg["changed_during_run"] = package.changed_since(pkg)
    info = meta(ctx, seconds, pkg)
    show(rows, f"gitops-data benchmarks ({info['mode']}, {seconds:.0f} s, {os.cpu_count()} cpus)")
    json_path, csv_path = write(rows, ctx.out, info)
    console.print(f"memory: {MEMORY_METHOD}")
    if pkg["changed_during_run"]:
        console.print(
            "[yellow]note[/]: gitops_data changed during the run; "
            "these numbers are for the copy made at its start"
        )
    console.print(f"wrote {json_path} and {csv_path}")
    errors = [r for r in rows if r.status == "error"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
