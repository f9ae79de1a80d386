"""The DuckDB engine: connections to the warehouse file, serialized across processes.

DuckDB lets one process at a time open a file for writing. The Dagster webserver, the daemon's
sensors, run workers and the CLI are separate processes, so every connection we open first takes an
exclusive `flock` on `<warehouse>.lock` (waiting with back-off), and connections are kept short.
A process that finds the lock taken touches the lock file while it waits: a long plan run holding
the warehouse sees the new mtime (`turn_wanted`) and gives it a turn between steps.
A connect that still fails on DuckDB's own file lock (an outside reader holding the file) is
retried with jittered back-off before giving up with WarehouseBusy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import pyarrow as pa

from gitops_data.capabilities import DUCKDB
from gitops_data.engines.backoff import Retry, lock_timeout, with_backoff
from gitops_data.engines.base import SCRATCH_PREFIX, Engine
from gitops_data.engines.holders import describe_duckdb_holder, describe_lock_record, lock_record
from gitops_data.errors import GitopsError


@contextlib.contextmanager
def warehouse_lock(path: str | Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the warehouse's cross-process lock (re-entrant within one process is NOT supported)."""
    timeout = lock_timeout() if timeout is None else timeout
    lock_path = f"{path}.lock"
    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)

    def take() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.utime(fd)  # ask the holder for a turn (see turn_wanted)
            raise Retry() from None
        os.ftruncate(fd, 0)  # who holds it, for those who wait (see holder)
        os.pwrite(fd, lock_record(), 0)

    def holder(_: str) -> str:
        try:
            return describe_lock_record(os.pread(fd, 4096, 0))
        except OSError:
            return "another process"

    try:
        with_backoff(
            take,
            timeout,
            0.005,
            0.5,
            f"warehouse {path} stayed locked for {timeout:.0f}s by another gitops-data process; "
            "try again when the running build or publish has finished",
            holder,
            f"warehouse {path}",
        )
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _connect(path: str, timeout: float) -> duckdb.DuckDBPyConnection:
    def attempt() -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(path)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise GitopsError(f"cannot open warehouse {path}: {exc}") from None
            raise Retry(str(exc)) from None

    return with_backoff(
        attempt,
        timeout,
        0.02,
        1.0,
        f"warehouse {path} is held open by another program ({{why}}); consumers should use "
        "short-lived read-only connections (see README, 'Concurrency and consumers')",
        describe_duckdb_holder,
        f"warehouse {path} (DuckDB's own file lock)",
    )


class DuckDBEngine(Engine):
    """The embedded default: one DuckDB file."""

    capabilities = DUCKDB

    def __init__(self, con: duckdb.DuckDBPyConnection, lock_path: str | None = None):
        self.con = con
        self.lock_path = lock_path
        self._turn_began = _mtime(lock_path)

    def execute(self, sql: str, params: list | None = None):
        return self.con.execute(sql, params or [])

    def executemany(self, sql: str, rows: list[list]) -> None:
        if rows:
            self.con.executemany(sql, rows)

    def objects(self, schema: str, names: list[str] | None = None) -> dict[str, str]:
        where, params = "schema_name = ?", [schema]
        if names is not None:
            if not names:
                return {}
            where += f" and name in ({', '.join('?' * len(names))})"
            params += names
        rows = self.fetchall(
            f"""select name, kind from (
                  select schema_name, table_name as name, 'TABLE' as kind from duckdb_tables()
                  union all
                  select schema_name, view_name, 'VIEW' from duckdb_views() where not internal)
                where {where}""",
            params,
        )
        return dict(rows)

    def columns(self, schema: str, name: str) -> dict[str, str]:
        return dict(
            self.fetchall(
                "select column_name, data_type from duckdb_columns() "
                "where schema_name = ? and table_name = ? order by column_index",
                [schema, name],
            )
        )

    def view_definitions(self, schema: str) -> dict[str, str]:
        return dict(
            self.fetchall(
                "select view_name, sql from duckdb_views() where schema_name = ? and not internal", [schema]
            )
        )

    def query_columns(self, select: str) -> list[str]:
        return [r[0] for r in self.fetchall(f"describe {select}")]

    def type_name(self, type_sql: str) -> str:
        return self.scalar(f"select typeof(cast(null as {type_sql}))")

    def database_key(self) -> tuple | None:
        path = self.scalar("select path from duckdb_databases() where database_name = current_database()")
        if not path:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (path, st.st_ino, st.st_dev)  # the inode tells a replaced file from the one we migrated

    def frame(self, sql: str):
        return self.con.sql(sql).pl()

    @contextlib.contextmanager
    def register_frame(self, frame, schema: str) -> Iterator[str]:
        """Zero-copy: DuckDB scans the Arrow/Polars frame in place."""
        name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:8]}"
        self.con.register(name, frame)
        try:
            yield f'"{name}"'
        finally:
            self.con.unregister(name)

    @contextlib.contextmanager
    def register_file(
        self, path: str, fmt: str, schema: str, types: dict[str, str] | None = None
    ) -> Iterator[str]:
        yield typed_file_reader(self.con, path, fmt, types)

    def sibling(self) -> DuckDBEngine:
        other = DuckDBEngine(self.con.cursor())  # a cursor: its own connection to the same database
        other.capabilities = self.capabilities
        return other

    def turn_wanted(self) -> bool:
        return self.lock_path is not None and _mtime(self.lock_path) != self._turn_began

    def close(self) -> None:
        self.con.close()


def _mtime(path: str | None) -> int | None:
    try:
        return os.stat(path).st_mtime_ns if path else None
    except OSError:
        return None


def file_reader(path: str, fmt: str) -> str:
    """DuckDB's table function reading a local csv, parquet or json file."""
    reader = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json_auto"}[fmt]
    return f"{reader}('" + path.replace("'", "''") + "')"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def typed_file_reader(
    con: duckdb.DuckDBPyConnection, path: str, fmt: str, types: dict[str, str] | None
) -> str:
    """`file_reader`, a CSV's declared columns read as their declared types (canonical names),
    those the header lacks left out (DuckDB rejects them)."""
    plain = file_reader(path, fmt)
    if fmt != "csv" or not types:
        return plain
    header = [r[0] for r in con.execute(f"describe select * from {plain}").fetchall()]
    wanted = {c: types[c] for c in header if c in types}
    if not wanted:
        return plain
    items = ", ".join(f"{_literal(c)}: {_literal(t)}" for c, t in wanted.items())
    return plain[:-1] + ", types={" + items + "})"


def file_as_arrow(path: str, fmt: str, types: dict[str, str] | None = None) -> pa.Table:
    """A local file read with DuckDB's readers (type inference, declared CSV types) into Arrow: how
    the engines without DuckDB's readers load a seed or file source."""
    con = duckdb.connect(":memory:")
    try:
        return con.sql(f"select * from {typed_file_reader(con, path, fmt, types)}").to_arrow_table()
    finally:
        con.close()


@contextlib.contextmanager
def open_duckdb(path: str | Path, timeout: float | None = None) -> Iterator[DuckDBEngine]:
    """A short-lived read-write connection, under the cross-process lock."""
    path = str(path)
    timeout = lock_timeout() if timeout is None else timeout
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with warehouse_lock(path, timeout):
        engine = DuckDBEngine(_connect(path, timeout), f"{path}.lock" if path != ":memory:" else None)
        try:
            yield engine
        finally:
            engine.close()
