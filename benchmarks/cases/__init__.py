"""One module per case. Each has ID, TITLE and `run(ctx) -> list[Row]` (in the parent process); the
measured steps are functions of the same module that the parent runs in child processes. A case on
PostgreSQL also has ENGINE = "postgres" (the others run on DuckDB)."""

from cases import (
    audit,
    build,
    cli,
    incremental,
    one_change,
    peer,
    pg_build,
    pg_publish,
    pg_readers,
    publish,
    python_model,
    scale,
    storage,
    tpch,
    tpch_dbt,
)

ALL = [
    build,
    python_model,
    one_change,
    audit,
    publish,
    storage,
    scale,
    peer,
    incremental,
    cli,
    tpch,
    tpch_dbt,
    pg_build,
    pg_publish,
    pg_readers,
]
ENGINES = ("duckdb", "postgres")


def engine_of(case) -> str:
    """The warehouse engine a case runs on (a module without ENGINE runs on DuckDB)."""
    return getattr(case, "ENGINE", "duckdb")
