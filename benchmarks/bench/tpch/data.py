"""TPC-H data: generated as parquet by `tpchgen-cli` (PyPI; a Rust binary, the same rows as the
reference `dbgen`), cached per scale factor under benchmarks/data/tpch/sf<SF>/ so reruns do not
regenerate it. tpchgen-cli comes from the PATH or the main virtualenv when it is there, else from
its own virtualenv, benchmarks/.venv-tpchgen, created on first use (like case 8's SQLMesh venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench import sidevenv
from bench.context import BENCH_DIR
from bench.tpch.models import SOURCE_SCHEMA, TABLES

REQUIREMENT = "tpchgen-cli==4.0.0"
VENV = BENCH_DIR / ".venv-tpchgen"
DATA_DIR = BENCH_DIR / "data" / "tpch"


def tpchgen(log: Path) -> str:
    """The tpchgen-cli executable: on PATH, beside this interpreter, or in its own venv (created here;
    raises sidevenv.Unavailable when pip cannot install it)."""
    for found in (shutil.which("tpchgen-cli"), Path(sys.executable).parent / "tpchgen-cli"):
        if found and Path(found).exists():
            return str(found)
    return str(sidevenv.ensure(VENV, [REQUIREMENT], log).parent / "tpchgen-cli")


def sf_label(scale_factor: float) -> str:
    return f"{scale_factor:g}"


def parquet_dir(scale_factor: float, log: Path) -> tuple[Path, float]:
    """The folder with the 8 tables as `<table>.parquet` at this scale factor, and the seconds spent
    generating them now (0 when cached)."""
    import time

    folder = DATA_DIR / f"sf{sf_label(scale_factor)}"
    done = folder / ".complete"
    if done.exists() and all((folder / f"{t}.parquet").exists() for t in TABLES):
        return folder, 0.0
    exe = tpchgen(log)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    cmd = [exe, "parquet", "-s", sf_label(scale_factor), "-o", str(tmp), "--quiet"]
    with log.open("ab") as fh:
        if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise sidevenv.Unavailable(f"{' '.join(cmd)} failed (see {log})")
    seconds = time.perf_counter() - t0
    (tmp / ".complete").write_text(f"{REQUIREMENT} sf={sf_label(scale_factor)}\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder, seconds


def load_sources(warehouse: str, folder: str) -> dict:
    """Create `main.<table>` from each parquet file in a new DuckDB file (child step, not timed as a
    side): the sources every side starts from. Returns row counts."""
    import duckdb

    con = duckdb.connect(warehouse)
    try:
        counts = {}
        for t in TABLES:
            path = Path(folder) / f"{t}.parquet"
            con.execute(f"create table {SOURCE_SCHEMA}.{t} as select * from read_parquet('{path}')")
            counts[t] = con.execute(f"select count(*) from {SOURCE_SCHEMA}.{t}").fetchone()[0]
        con.execute("checkpoint")
    finally:
        con.close()
    return {"rows": counts}
