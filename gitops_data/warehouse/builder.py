"""Write one build: a new, immutable physical table in the internal schema, plus its catalog row.

The CREATE TABLE and the catalog insert commit together, so a crash mid-build leaves neither: a
later plan can never mistake a half-written table for a build.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass

import duckdb

from gitops_data.errors import BuildError
from gitops_data.naming import physical_table, qualified, quote
from gitops_data.plan import BuildRecord
from gitops_data.warehouse.catalog import ensure_catalog, now, record_build
from gitops_data.warehouse.connection import transaction


@dataclass(frozen=True)
class BuildTarget:
    """Where and for what a build is written."""

    model: str
    kind: str
    fingerprint: str
    commit: str
    env: str
    run_id: str | None
    internal_schema: str
    meta_schema: str


def with_casts(con: duckdb.DuckDBPyConnection, select: str, types: dict[str, str]) -> str:
    if not types:
        return select
    present = {row[0] for row in con.execute(f"describe {select}").fetchall()}
    casts = [f"cast({quote(c)} as {t}) as {quote(c)}" for c, t in types.items() if c in present]
    if not casts:
        return select
    return f"select * replace ({', '.join(casts)}) from ({select})"


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
    rows = con.execute(
        "select column_name, data_type from duckdb_columns() where schema_name = ? and table_name = ? order by column_index",
        [schema, table],
    ).fetchall()
    return dict(rows)


def write_build(
    con: duckdb.DuckDBPyConnection, target: BuildTarget, select: str, cast_types: dict[str, str] | None = None,
    inputs: dict[str, str] | None = None, deterministic: bool = True,
) -> tuple[BuildRecord, dict[str, str]]:
    """CREATE TABLE <new physical table> AS <select>, recorded in the catalog, in one transaction."""
    build_id = uuid.uuid4().hex[:8]
    table = physical_table(target.model, target.fingerprint, build_id)
    ensure_catalog(con, target.meta_schema)
    con.execute(f"create schema if not exists {quote(target.internal_schema)}")
    try:
        with transaction(con):
            con.execute(
                f"create table {qualified(target.internal_schema, table)} as "
                + with_casts(con, select, cast_types or {})
            )
            rows = con.execute(f"select count(*) from {qualified(target.internal_schema, table)}").fetchall()[0][0]
            columns = table_columns(con, target.internal_schema, table)
            rec = BuildRecord(build_id, target.model, target.fingerprint, table, target.commit, target.run_id, rows, now(),
                              inputs or {}, target.fingerprint if deterministic else build_id)
            record_build(con, target.meta_schema, rec, target.kind, target.env, columns)
    except duckdb.Error as exc:
        raise BuildError(f"building {target.model!r} failed: {exc}") from None
    return rec, columns


def write_frame(con: duckdb.DuckDBPyConnection, target: BuildTarget, frame, cast_types: dict[str, str],
                inputs: dict[str, str] | None = None, deterministic: bool = True):
    """Build from a Polars/Arrow frame (Python models); the frame goes into DuckDB through Arrow."""
    name = f"__gitops_frame_{uuid.uuid4().hex[:8]}"
    con.register(name, frame)
    try:
        return write_build(con, target, f"select * from {quote(name)}", cast_types, inputs, deterministic)
    finally:
        con.unregister(name)


def write_file(con: duckdb.DuckDBPyConnection, target: BuildTarget, data: bytes, fmt: str, cast_types: dict[str, str]):
    """Build from a file's bytes as of the commit (seeds and repo-file sources)."""
    suffix = {"csv": ".csv", "parquet": ".parquet", "json": ".json"}[fmt]
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="gitops_data_")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        reader = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json_auto"}[fmt]
        literal = "'" + path.replace("'", "''") + "'"
        return write_build(con, target, f"select * from {reader}({literal})", cast_types)
    finally:
        os.unlink(path)
