"""Case 2: a Python (Polars) model that produces N rows: `sync` vs running the same function and
`CREATE TABLE t AS SELECT * FROM arrow_table` directly."""

from __future__ import annotations

import importlib.util

from bench.dag import Scenario
from bench.datarepo import dagster_home, init_repo
from bench.measure import step
from bench.report import Row

ID = "2"
TITLE = "python model write (Polars)"

MODEL_FILE = "models/wide.py"
MODEL_SOURCE = """import polars as pl

ROWS = {rows}
KINDS = {{0: "view", 1: "click", 2: "cart", 3: "purchase", 4: "refund"}}


def wide_frame() -> pl.DataFrame:
    frame = pl.DataFrame({{"id": pl.int_range(0, ROWS, dtype=pl.Int64, eager=True)}})
    return frame.with_columns(
        (pl.col("id").hash(seed=1) % 200_000).cast(pl.Int64).alias("user_id"),
        ((pl.col("id").hash(seed=2) % 100_000) / 100).alias("amount"),
        (pl.col("id").hash(seed=3) % 5).replace_strict(KINDS, return_dtype=pl.String).alias("kind"),
        pl.format("c{{}}", pl.col("id") % 1000).alias("code"),
    )
"""


def project_files(rows: int) -> dict[str, str]:
    return {
        "gitops_data.yaml": "name: bench_python\n",
        MODEL_FILE: MODEL_SOURCE.format(rows=rows),
        "models.yml": f"models:\n  - name: wide\n    python: {MODEL_FILE}:wide_frame\n",
    }


def baseline(model_file: str, warehouse: str) -> dict:
    import duckdb

    spec = importlib.util.spec_from_file_location("wide_model", model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with step("python_baseline") as m:
        arrow_table = module.wide_frame().to_arrow()
        con = duckdb.connect(warehouse)
        con.register("arrow_table", arrow_table)
        con.execute("create table wide as select * from arrow_table")
        m["rows"] = con.execute("select count(*) from wide").fetchall()[0][0]
        con.close()
    return m


def run(ctx) -> list[Row]:
    rows = ctx.sizes.python_rows
    sc = Scenario(ctx.fresh("python_model"))
    init_repo(sc.repo.path, project_files(rows))
    dagster_home(sc.home)
    ours = ctx.child("bench.steps:sync_ref", ref="main", **sc.kwargs())
    base_wh = sc.root / "baseline.duckdb"
    base = ctx.child(
        "cases.python_model:baseline", model_file=str(sc.repo.path / MODEL_FILE), warehouse=str(base_wh)
    )
    if ours["status"] != "published" or base["rows"] != rows:
        raise AssertionError(f"python model: ours {ours['status']}, baseline wrote {base['rows']} rows")
    return [
        Row(
            ID,
            f"{TITLE}, {rows:,} rows x 5 cols, first sync",
            ours["seconds"],
            base["seconds"],
            target="<= 1.3x",
            limit=1.3,
            ours_mb=ours["peak_mb"],
            baseline_mb=base["peak_mb"],
            notes="both sides run the same Polars function; baseline: df.to_arrow() + CTAS",
        )
    ]
