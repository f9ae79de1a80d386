"""The Spark engine, through Spark Connect (`sc://host:port`; the `spark` extra).

Builds are parquet tables in the internal schema (a Spark database), environments are views in
the external ones. Spark has no transactions and its parquet tables no DELETE or UPDATE, so the
catalog is kept in a store apart (`catalog_store`: a DuckDB file or a PostgreSQL database, see
`locations.catalog_location`), and gitops-data processes take their turns on that store's lock
(the flock of its file, or its advisory lock): every connection to the warehouse opens the store
first, so holding the store is holding the warehouse. A publish flips view by view with
`ALTER VIEW ... AS` (atomic per view; `CREATE OR REPLACE VIEW` drops then creates, and a reader
in between finds no view). Frames go in and out through Arrow.

One Spark Connect session per server and process is kept for every connection (sessions are
cheap to share and costly to make; they are thread-safe): its settings make `"x"` an identifier
(`spark.sql.ansi.doubleQuotedIdentifiers`) and read and write timestamps in UTC.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitops_data.capabilities import SPARK
from gitops_data.engines.base import SCRATCH_PREFIX, Engine
from gitops_data.engines.locations import catalog_location, engine_kind, redact
from gitops_data.errors import GitopsError
from gitops_data.naming import qualified, quote

SESSION_CONF = {
    "spark.sql.ansi.doubleQuotedIdentifiers": "true",
    "spark.sql.session.timeZone": "UTC",
    # an error's message is Spark's own; the server's JVM trace would bury it in every BuildError
    "spark.sql.connect.serverStacktrace.enabled": "false",
    "spark.sql.pyspark.jvmStacktrace.enabled": "false",
}

_sessions: dict[tuple[str, int], Any] = {}
_sessions_lock = threading.Lock()


class SparkUnavailable(GitopsError):
    """The Spark Connect client is not installed, or the server does not answer."""


def _session(location: str):
    """This process's Spark Connect session to the server at `location` (made on first use)."""
    key = (location, os.getpid())  # a forked process makes its own (gRPC channels are not fork-safe)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is not None:
            return session
        # pandas 3 is newer than pyspark's version check knows (it warns at import and at connect)
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise SparkUnavailable(
                f"warehouse {redact(location)} is a Spark Connect server, but pyspark is not installed: "
                "pip install 'gitops-data[spark]'"
            ) from None
        # the client logs every server error with its JVM trace; the error raised says enough
        for logger in ("SQLQueryContextLogger", "pyspark.sql.connect.logging"):
            logging.getLogger(logger).setLevel(logging.CRITICAL)
        try:
            session = SparkSession.builder.remote(location).create()
            for name, value in SESSION_CONF.items():
                session.conf.set(name, value)
        except Exception as exc:
            raise SparkUnavailable(
                f"cannot reach the Spark Connect server at {redact(location)} "
                f"({' '.join(str(exc).split())[:200]}); is it running?"
            ) from None
        _sessions[key] = session
        return session


class _Rows:
    """What `execute` returns: a statement's rows, fetched when asked (a command already ran)."""

    def __init__(self, frame):
        self._frame = frame

    def fetchall(self) -> list[tuple]:
        return [tuple(row) for row in self._frame.collect()]


def _not_found(exc: BaseException) -> bool:
    text = str(exc)
    return "SCHEMA_NOT_FOUND" in text or "NoSuchDatabase" in text or "TABLE_OR_VIEW_NOT_FOUND" in text


def _plain_arrow(table):
    """`table` with Arrow's large and view string/binary types made plain (Polars writes them;
    Spark's Arrow reader takes the plain ones)."""
    import pyarrow as pa

    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            return pa.binary()
        if pa.types.is_large_list(t) or pa.types.is_list(t):
            return pa.list_(plain(t.value_type))
        return t

    schema = pa.schema([f.with_type(plain(f.type)) for f in table.schema])
    return table if schema == table.schema else table.cast(schema)


class SparkEngine(Engine):
    """One Spark Connect session to the server, and the catalog's store beside it."""

    capabilities = SPARK

    def __init__(self, session, store: Engine, location: str, owns_store: bool = False):
        self.spark = session
        self.store = store
        self.location = location
        self.owns_store = owns_store  # a sibling closes its store's sibling; the opener its store

    @property
    def catalog_store(self) -> Engine:
        return self.store

    def execute(self, sql: str, params: list | None = None) -> _Rows:
        return _Rows(self.spark.sql(sql, args=list(params)) if params else self.spark.sql(sql))

    def executemany(self, sql: str, rows: list[list]) -> None:
        for row in rows:
            self.execute(sql, row)

    # -- introspection ----------------------------------------------------------------------
    def objects(self, schema: str, names: list[str] | None = None) -> dict[str, str]:
        if names is not None and not names:
            return {}
        try:
            tables = [r[1] for r in self.fetchall(f"show tables in {quote(schema)}") if not r[2]]
            views = {r[1] for r in self.fetchall(f"show views in {quote(schema)}") if not r[2]}
        except Exception as exc:
            if _not_found(exc):
                return {}
            raise
        found = {name: "VIEW" if name in views else "TABLE" for name in tables}
        return found if names is None else {n: found[n] for n in names if n in found}

    def columns(self, schema: str, name: str) -> dict[str, str]:
        fields = self.spark.sql(f"select * from {qualified(schema, name)}").schema.fields
        return {f.name: f.dataType.simpleString() for f in fields}

    def view_definitions(self, schema: str) -> dict[str, str]:
        out = {}
        for name, kind in self.objects(schema).items():
            if kind == "VIEW":
                rows = self.fetchall(f"describe table extended {qualified(schema, name)}")
                out[name] = next((r[1] for r in rows if r[0] == "View Text"), "")
        return out

    def query_columns(self, select: str) -> list[str]:
        return list(self.spark.sql(select).columns)  # analyzed by the server, not run

    def type_name(self, type_sql: str) -> str:
        field = self.spark.sql(f"select cast(null as {type_sql}) as x").schema.fields[0]
        return field.dataType.simpleString()

    def database_key(self) -> tuple | None:
        return ("spark", self.location, self.store.database_key())

    # -- data movement ----------------------------------------------------------------------
    def frame(self, sql: str):
        import polars as pl

        return pl.from_arrow(self.spark.sql(sql).toArrow())

    @contextlib.contextmanager
    def register_frame(self, frame, schema: str) -> Iterator[str]:
        """The frame sent through Arrow, readable as a temporary view of this session."""
        import polars as pl

        data = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
        arrow = _plain_arrow(data.to_arrow() if isinstance(data, pl.DataFrame) else data)
        name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:8]}"
        self.spark.createDataFrame(arrow).createOrReplaceTempView(name)
        try:
            yield quote(name)
        finally:
            with contextlib.suppress(Exception):  # a lost session takes its temporary views along
                self.spark.catalog.dropTempView(name)

    @contextlib.contextmanager
    def register_file(
        self, path: str, fmt: str, schema: str, types: dict[str, str] | None = None
    ) -> Iterator[str]:
        """A local file read with DuckDB's readers (the type inference and declared types of the
        DuckDB engine; the server may be on another machine), then sent through Arrow."""
        from gitops_data.engines.duckdb import file_as_arrow

        with self.register_frame(file_as_arrow(path, fmt, types), schema) as name:
            yield name

    # -- turns and threads ------------------------------------------------------------------
    def sibling(self) -> SparkEngine:
        other = SparkEngine(self.spark, self.store.sibling(), self.location, owns_store=True)
        other.capabilities = self.capabilities
        return other

    def turn_wanted(self) -> bool:
        return self.store.turn_wanted()

    def close(self) -> None:
        if self.owns_store:
            self.store.close()

    # -- DDL ----------------------------------------------------------------------------------
    def create_table_as(self, schema: str, name: str, select: str) -> int:
        self.execute(f"create table {qualified(schema, name)} using parquet as {select}")
        return self.count(qualified(schema, name))

    def replace_view(self, schema: str, name: str, select: str, existing: str | None) -> None:
        """`ALTER VIEW ... AS` for a view there (atomic: a reader sees the old body or the new one);
        a table in the way is dropped first."""
        if existing == "VIEW":
            self.execute(f"alter view {qualified(schema, name)} as {select}")
            return
        if existing == "TABLE":
            self.drop("table", schema, name)
        self.create_view(schema, name, select, replace=False)


@contextlib.contextmanager
def open_spark(location: str | Path, timeout: float | None = None) -> Iterator[SparkEngine]:
    """A connection to the Spark warehouse at `location`: its catalog's store first (holding it
    is this process's turn on the warehouse), then the process's session to the server."""
    location = str(location)
    store_location = catalog_location(location)
    with engine_kind(store_location).open(store_location, timeout) as store:
        yield SparkEngine(_session(location), store, location)
