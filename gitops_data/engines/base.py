"""The engine interface: everything warehouse-specific that gitops-data does, behind one class.

An engine wraps one open connection. The catalog, builds, audits, publishing, drift and gc speak to
the warehouse only through these methods (and plain `execute` / `fetchall` of SQL they write in the
engine's dialect), so a second engine is one new module implementing this class.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from gitops_data.capabilities import Capabilities
from gitops_data.naming import qualified, quote

# Tables named so are staging of a bulk load (register_frame), never builds.
SCRATCH_PREFIX = "__gitops_frame_"


class Engine(ABC):
    """One connection to a warehouse. `capabilities` declares what the engine has; the core asks it
    (an instance may declare less than its class, e.g. a test running the core's paths for engines
    without transactions on DuckDB)."""

    capabilities: Capabilities

    @property
    def dialect(self) -> str:
        """sqlglot's name for the engine's SQL."""
        return self.capabilities.dialect

    @property
    def catalog_store(self) -> Engine:
        """The connection the catalog's rows are kept in: this one, unless the engine's tables cannot
        hold them (no row-level DELETE / UPDATE) and it opened a store apart (`Catalog`)."""
        return self

    @property
    def json_type(self) -> str:
        """Column type of the catalog's JSON documents."""
        return self.capabilities.json_type

    # -- statements -------------------------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, params: list | None = None) -> Any:
        """Run one statement; the result has `fetchall()`."""

    def fetchall(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: list | None = None) -> Any:
        rows = self.fetchall(sql, params)
        return rows[0][0] if rows else None

    @abstractmethod
    def executemany(self, sql: str, rows: list[list]) -> None: ...

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Engine]:
        """BEGIN ... COMMIT, or ROLLBACK on any exception (then re-raised). On an engine without
        transactions, each statement stands alone: callers order their writes so that a crash
        between two leaves nothing a later run cannot repair (a table before its catalog row)."""
        if not self.capabilities.transactional_ddl:
            yield self
            return
        self.execute("begin")
        try:
            yield self
        except BaseException:
            with contextlib.suppress(Exception):  # a lost connection: its error is the one to report
                self.execute("rollback")
            raise
        self.execute("commit")

    # -- introspection ----------------------------------------------------------------------
    @abstractmethod
    def objects(self, schema: str, names: list[str] | None = None) -> dict[str, str]:
        """name -> 'TABLE' | 'VIEW' of everything in `schema` (user objects only); with `names`,
        of those of them that exist."""

    @abstractmethod
    def columns(self, schema: str, name: str) -> dict[str, str]:
        """column -> type of a table or view, in order."""

    @abstractmethod
    def view_definitions(self, schema: str) -> dict[str, str]:
        """view -> the definition the engine stores (what drift detection compares)."""

    @abstractmethod
    def query_columns(self, select: str) -> list[str]:
        """Output column names of a query, without running it."""

    @abstractmethod
    def type_name(self, type_sql: str) -> str:
        """How the engine names a declared column type in `columns()`."""

    @abstractmethod
    def database_key(self) -> tuple | None:
        """Identifies the database (to migrate the catalog once per database and process)."""

    # -- data movement ----------------------------------------------------------------------
    @abstractmethod
    def frame(self, sql: str):
        """The result of a query as a Polars DataFrame."""

    @abstractmethod
    def register_frame(self, frame, schema: str) -> contextlib.AbstractContextManager[str]:
        """Make a Polars/Arrow frame readable as a table (in bulk, never row by row); yields what
        a FROM clause names it by. `schema` is where an engine may stage it."""

    @abstractmethod
    def register_file(
        self, path: str, fmt: str, schema: str, types: dict[str, str] | None = None
    ) -> contextlib.AbstractContextManager[str]:
        """Make a local file (csv, parquet, json) readable as a table; yields its FROM item.
        `types`: canonical column types the project declares, which a CSV is read as (instead of
        the types guessed from its first rows); columns the file lacks are ignored."""

    # -- turns and threads ------------------------------------------------------------------
    @abstractmethod
    def sibling(self) -> Engine:
        """Another connection to the same database, for another thread of this process, under the
        turn this connection holds (it takes no lock of its own). Close it before this one."""

    def turn_wanted(self) -> bool:
        """Whether another gitops-data process has asked for the warehouse since this connection
        took its turn (engines that cannot tell: always)."""
        return True

    @abstractmethod
    def close(self) -> None: ...

    # -- transactions and locks -------------------------------------------------------------
    def is_lock_conflict(self, exc: BaseException) -> bool:
        """Whether `exc` means a reader held an object too long (the publish retries)."""
        return False

    def lock_views(self, schema: str, names: list[str], attempt: int = 1) -> None:
        """Inside a publish's transaction, before any change: take the views it will change or
        drop, waiting for readers only briefly (`is_lock_conflict` then says to retry); `attempt`
        counts the tries of this publish."""
        return None

    # -- DDL ----------------------------------------------------------------------------------
    def create_schema(self, schema: str) -> None:
        self.execute(f"create schema if not exists {quote(schema)}")

    def create_table_as(self, schema: str, name: str, select: str) -> int:
        """CREATE TABLE ... AS `select`; returns how many rows it wrote."""
        if self.capabilities.ctas_row_count:
            return int(self.scalar(f"create table {qualified(schema, name)} as {select}"))
        self.execute(f"create table {qualified(schema, name)} as {select}")
        return self.count(qualified(schema, name))

    def create_view(self, schema: str, name: str, select: str, replace: bool = True) -> None:
        self.execute(f"create {'or replace ' if replace else ''}view {qualified(schema, name)} as {select}")

    def replace_view(self, schema: str, name: str, select: str, existing: str | None) -> None:
        """Point view `name` at `select`; `existing`: what `name` is now ('TABLE', 'VIEW' or None)."""
        if existing == "TABLE":
            self.drop("table", schema, name)
        self.create_view(schema, name, select)

    def replace_views(
        self, schema: str, views: dict[str, tuple[str, str, str]], existing: dict[str, str]
    ) -> None:
        """`replace_view` for many: name -> (select, source schema, source table) it selects all of."""
        for name, (select, _, _) in views.items():
            self.replace_view(schema, name, select, existing.get(name))

    def drop(self, kind: str, schema: str, name: str) -> None:
        self.execute(f"drop {kind} {qualified(schema, name)}")

    def drop_schema(self, schema: str) -> None:
        """Drop an environment's schema (only gitops-data's views are in it)."""
        self.execute(f"drop schema if exists {quote(schema)} cascade")

    # -- access -----------------------------------------------------------------------------
    def grant_read(self, schema: str, roles: list[str]) -> None:
        """Let `roles` read every view of `schema` (asked only of engines with `grants`)."""
        return None

    def missing_roles(self, roles: list[str]) -> list[str]:
        """Those of `roles` the warehouse does not have (asked only of engines with `grants`)."""
        return []

    def count(self, table: str) -> int:
        return int(self.scalar(f"select count(*) from {table}"))
