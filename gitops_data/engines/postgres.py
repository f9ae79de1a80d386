"""The PostgreSQL engine: psycopg 3 for statements, ADBC (Arrow, COPY underneath) for bulk data.

Every connection gitops-data opens takes a session-level advisory lock first, so gitops-data
processes (CLI, sensors, run workers) take turns exactly as they do on a DuckDB file, without a
lock file; a killed process's lock goes with its session. Consumers never take it: they are
blocked only by a publish's own flip (a few ms per view, bounded by `lock_timeout`).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors

from gitops_data.capabilities import POSTGRES
from gitops_data.engines.backoff import Retry, lock_timeout, with_backoff
from gitops_data.engines.base import SCRATCH_PREFIX, Engine
from gitops_data.engines.holders import this_command
from gitops_data.engines.locations import redact
from gitops_data.errors import GitopsError, PublishConflict
from gitops_data.naming import qualified, quote

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

# pg_advisory_lock key shared by every gitops-data process on a database ("gitops" in ASCII).
ADVISORY_KEY = 0x6769746F7073
# Held by a process while it waits for ADVISORY_KEY: asks the holder for a turn (see turn_wanted).
KNOCK_KEY = ADVISORY_KEY + 1
# How long a publish waits for readers' locks on the views it changes before it rolls back and
# retries. Shorter than PostgreSQL's deadlock_timeout (1 s): a reader that holds one of those views
# and waits for another we hold is never the one a deadlock check kills; we step back first.
PUBLISH_LOCK_TIMEOUT = "200ms"


def libpq_url(url: str) -> str:
    """A URL libpq accepts (SQLAlchemy-style `postgresql+psycopg2://` loses its driver part)."""
    return re.sub(r"^(postgresql|postgres)\+\w+://", "postgresql://", url, flags=re.IGNORECASE)


def _qmarks(sql: str) -> str:
    """`?` placeholders (the catalog's, shared with DuckDB) -> psycopg's `%s`, outside literals."""
    out, quote_char = [], None
    for ch in sql:
        if quote_char:
            if ch == quote_char:
                quote_char = None
            out.append("%%" if ch == "%" else ch)
        elif ch in "'\"":
            quote_char = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append("%%" if ch == "%" else ch)
    return "".join(out)


class PostgresEngine(Engine):
    """A PostgreSQL database (15+)."""

    capabilities = POSTGRES

    def __init__(self, con: psycopg.Connection, url: str):
        self.con = con
        self.url = url
        self._adbc = None

    # -- statements -------------------------------------------------------------------------
    def execute(self, sql: str, params: list | None = None):
        if params:
            return self.con.execute(_qmarks(sql), params)
        return self.con.execute(sql)

    def create_table_as(self, schema: str, name: str, select: str) -> int:
        return self.execute(f"create table {qualified(schema, name)} as {select}").rowcount

    def fetchall(self, sql: str, params: list | None = None) -> list[tuple]:
        cur = self.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []

    def executemany(self, sql: str, rows: list[list]) -> None:
        if rows:
            with self.con.cursor() as cur:
                cur.executemany(_qmarks(sql), rows)

    def is_lock_conflict(self, exc: BaseException) -> bool:
        return isinstance(exc, (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected))

    def lock_views(self, schema: str, names: list[str], attempt: int = 1) -> None:
        """Take every view a publish changes at once, up front (inside its transaction). A reader
        whose one statement names several of them takes them in its own order; a lock order against
        it can only ever time out, so tries alternate the order, then shuffle it: a reader's order
        is met within two tries, and mixed orders by chance."""
        self.execute(f"set local lock_timeout = '{PUBLISH_LOCK_TIMEOUT}'")
        if not names:
            return
        order = sorted(names)
        if attempt % 2 == 0:
            order.reverse()
        if attempt > 4:
            random.shuffle(order)
        self.execute(f"lock table {', '.join(qualified(schema, n) for n in order)} in access exclusive mode")

    # -- introspection ----------------------------------------------------------------------
    def objects(self, schema: str, names: list[str] | None = None) -> dict[str, str]:
        if names is not None and not names:
            return {}
        rows = self.fetchall(
            """select c.relname, case when c.relkind in ('v', 'm') then 'VIEW' else 'TABLE' end
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = ? and c.relkind in ('r', 'p', 'v', 'm', 'f')"""
            + (" and c.relname = any(?)" if names is not None else ""),
            [schema, names] if names is not None else [schema],
        )
        return dict(rows)

    def columns(self, schema: str, name: str) -> dict[str, str]:
        return dict(self._columns_of(schema, [name]).get(name, []))

    def view_definitions(self, schema: str) -> dict[str, str]:
        return dict(
            self.fetchall(
                """select c.relname, pg_get_viewdef(c.oid) from pg_class c
                   join pg_namespace n on n.oid = c.relnamespace where n.nspname = ? and c.relkind = 'v'""",
                [schema],
            )
        )

    def query_columns(self, select: str) -> list[str]:
        return [c for c, _ in self._select_types(select)]

    def type_name(self, type_sql: str) -> str:
        return self._select_types(f"select cast(null as {type_sql})")[0][1]

    def _select_types(self, select: str) -> list[tuple[str, str]]:
        """(column, type as format_type names it) of a query's output, without running it."""
        cur = self.con.execute(f"select * from ({select}) as q limit 0")
        res, cols = cur.pgresult, cur.description or []
        if res is None or not cols:
            return []
        types = self.fetchall(
            "select format_type(t, m) from unnest(?::oid[], ?::int[]) with ordinality as x(t, m, i) "
            "order by i",
            [[res.ftype(i) for i in range(len(cols))], [res.fmod(i) for i in range(len(cols))]],
        )
        return [(c.name, t) for c, (t,) in zip(cols, types, strict=True)]

    def database_key(self) -> tuple | None:
        return tuple(
            self.fetchall("select inet_server_addr()::text, inet_server_port(), current_database()")[0]
        )

    def dependents(self, schema: str, name: str) -> list[str]:
        """Objects (outside gitops-data's own catalog) that depend on the view or table `schema.name`."""
        rows = self.fetchall(
            """select distinct dn.nspname || '.' || dc.relname from pg_depend d
               join pg_rewrite r on r.oid = d.objid join pg_class dc on dc.oid = r.ev_class
               join pg_namespace dn on dn.oid = dc.relnamespace
               join pg_class c on c.oid = d.refobjid join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = ? and c.relname = ? and dc.oid <> c.oid order by 1""",
            [schema, name],
        )
        return [r[0] for r in rows]

    # -- data movement ----------------------------------------------------------------------
    def _arrow(self):
        if self._adbc is None:
            import adbc_driver_postgresql.dbapi as adbc

            self._adbc = adbc.connect(libpq_url(self.url), autocommit=True)
        return self._adbc

    def frame(self, sql: str):
        import polars as pl
        import pyarrow as pa

        with self._arrow().cursor() as cur:
            cur.execute(sql)
            table = cur.fetch_arrow_table()
        columns = {}
        for field, column in zip(table.schema, table.columns, strict=True):
            meta = field.metadata or {}
            if isinstance(field.type, pa.OpaqueType) and meta.get(b"POSTGRESQL:type") == b"numeric":
                text = _series(pa.chunked_array([c.storage for c in column.chunks], pa.string()))
                mod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
                # numeric(p, s) keeps its scale; a bare numeric gets the scale its values need
                scale = ((mod - 4) & 0xFFFF) if mod >= 4 else None
                columns[field.name] = text.str.to_decimal(inference_length=max(len(text), 1), scale=scale)
            else:
                columns[field.name] = _series(column)
        return pl.DataFrame([s.alias(n) for n, s in columns.items()]) if columns else pl.DataFrame()

    @contextlib.contextmanager
    def register_frame(self, frame, schema: str) -> Iterator[str]:
        """Bulk-load the frame (ADBC: binary COPY) into a scratch table of `schema`, dropped after."""
        import polars as pl

        name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:8]}"
        data = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
        arrow = data.to_arrow() if isinstance(data, pl.DataFrame) else data
        self.create_schema(schema)
        with self._arrow().cursor() as cur:
            cur.adbc_ingest(name, arrow, mode="create", db_schema_name=schema)
        try:
            yield qualified(schema, name)
        finally:
            self.execute(f"drop table if exists {qualified(schema, name)}")

    @contextlib.contextmanager
    def register_file(
        self, path: str, fmt: str, schema: str, types: dict[str, str] | None = None
    ) -> Iterator[str]:
        """A local file read with DuckDB's readers (the same type inference and declared types as
        the DuckDB engine), then bulk-loaded as a scratch table."""
        from gitops_data.engines.duckdb import file_as_arrow

        with self.register_frame(file_as_arrow(path, fmt, types), schema) as name:
            yield name

    # -- DDL ----------------------------------------------------------------------------------
    def replace_view(self, schema: str, name: str, select: str, existing: str | None) -> None:
        """Point view `name` at `select`. CREATE OR REPLACE keeps objects that depend on the view,
        but PostgreSQL allows it only when the new columns extend the old ones; otherwise the view
        is dropped (never CASCADE) and created, and a user's object depending on it is named."""
        old = self._columns_of(schema, [name]).get(name, []) if existing == "VIEW" else []
        self._replace(schema, name, select, existing, old, self._select_types(select))

    def replace_views(
        self, schema: str, views: dict[str, tuple[str, str, str]], existing: dict[str, str]
    ) -> None:
        """Many views at once (a publish): the columns of the old views and of their new sources
        are read in two queries, not per view."""
        old = self._columns_of(schema, [n for n in views if existing.get(n) == "VIEW"])
        sources: dict[str, dict[str, list[tuple[str, str]]]] = {}
        for _, src_schema, src_table in views.values():
            sources.setdefault(src_schema, {})[src_table] = []
        for src_schema, tables in sources.items():
            sources[src_schema] = self._columns_of(src_schema, list(tables))
        for name, (select, src_schema, src_table) in views.items():
            new = sources[src_schema].get(src_table, [])
            self._replace(schema, name, select, existing.get(name), old.get(name, []), new)

    def _replace(
        self,
        schema: str,
        name: str,
        select: str,
        existing: str | None,
        old: list[tuple[str, str]],
        new: list[tuple[str, str]],
    ) -> None:
        if existing == "VIEW" and old and new[: len(old)] == old:
            self.execute(f"create or replace view {qualified(schema, name)} as {select}")
            return
        if existing is not None:
            self.drop(existing, schema, name)
        self.execute(f"create view {qualified(schema, name)} as {select}")

    def _columns_of(self, schema: str, names: list[str]) -> dict[str, list[tuple[str, str]]]:
        """name -> [(column, type)] of the tables and views `names` of `schema`, in one query."""
        if not names:
            return {}
        out: dict[str, list[tuple[str, str]]] = {}
        for rel, col, typ in self.fetchall(
            """select c.relname, a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a
               join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = ? and c.relname = any(?) and a.attnum > 0 and not a.attisdropped
               order by c.relname, a.attnum""",
            [schema, names],
        ):
            out.setdefault(rel, []).append((col, typ))
        return out

    def drop(self, kind: str, schema: str, name: str) -> None:
        users = self.dependents(schema, name)  # asked first: a failed DROP would abort the transaction
        if users:
            raise PublishConflict(
                f"cannot drop {kind.lower()} {schema}.{name}: {', '.join(users)} depends on it. "
                "gitops-data never drops other objects (no CASCADE): drop or re-point the dependent "
                "object, then try again"
            )
        self.execute(f"drop {kind} {qualified(schema, name)}")

    def drop_schema(self, schema: str) -> None:
        """Drop an environment's schema: its views one by one (never CASCADE), then the schema."""
        objects = self.objects(schema)
        for name, kind in sorted(objects.items(), key=lambda o: o[1] != "VIEW"):
            self.drop(kind, schema, name)
        self.execute(f"drop schema if exists {quote(schema)}")

    def grant_read(self, schema: str, roles: list[str]) -> None:
        for role in roles:
            self.execute(f"grant usage on schema {quote(schema)} to {quote(role)}")
            self.execute(f"grant select on all tables in schema {quote(schema)} to {quote(role)}")

    def missing_roles(self, roles: list[str]) -> list[str]:
        present = {r[0] for r in self.fetchall("select rolname from pg_roles")}
        return [r for r in roles if r not in present]

    def turn_wanted(self) -> bool:
        return bool(
            self.scalar(
                """select exists(select 1 from pg_locks where locktype = 'advisory' and granted
                     and database = (select oid from pg_database where datname = current_database())
                     and classid = ? and objid = ? and pid <> pg_backend_pid())""",
                [KNOCK_KEY >> 32, KNOCK_KEY & 0xFFFFFFFF],
            )
        )

    def sibling(self) -> PostgresEngine:
        # no advisory lock of its own: the turn this connection holds covers it
        other = PostgresEngine(_connect(self.url, lock_timeout()), self.url)
        other.capabilities = self.capabilities
        return other

    def close(self) -> None:
        if self._adbc is not None:
            with contextlib.suppress(Exception):
                self._adbc.close()
        self.con.close()


def _connect(url: str, timeout: float) -> psycopg.Connection:
    def attempt() -> psycopg.Connection:
        try:
            named: dict[str, Any] = {}
            if "application_name" not in url:  # the URL's own name wins
                named["application_name"] = application_name()
            return psycopg.connect(
                libpq_url(url), autocommit=True, prepare_threshold=None, connect_timeout=10, **named
            )
        except psycopg.OperationalError as exc:
            message = " ".join(str(exc).split())
            if "too many clients" in message or "starting up" in message or "shutting down" in message:
                raise Retry(message) from None
            raise GitopsError(f"cannot connect to warehouse {redact(url)}: {message}") from None

    return with_backoff(attempt, timeout, 0.05, 2.0, f"warehouse {redact(url)} refused connections ({{why}})")


@contextlib.contextmanager
def open_postgres(url: str, timeout: float | None = None) -> Iterator[PostgresEngine]:
    """A short-lived connection holding the gitops-data advisory lock of the database."""
    timeout = lock_timeout() if timeout is None else timeout
    con = _connect(url, timeout)
    engine = PostgresEngine(con, url)
    try:
        knocked = False

        def take() -> None:
            nonlocal knocked
            if not _try_advisory_lock(con, ADVISORY_KEY):
                if not knocked:  # one knock per waiter; it goes with the session if we give up
                    knocked = _try_advisory_lock(con, KNOCK_KEY)
                raise Retry()

        with_backoff(
            take,
            timeout,
            0.005,
            0.5,
            f"warehouse {redact(url)} stayed locked for {timeout:.0f}s by another gitops-data process; "
            "try again when the running build or publish has finished",
            lambda _: lock_holder(con),
            f"warehouse {redact(url)}",
        )
        if knocked:
            con.execute("select pg_advisory_unlock(%s)", [KNOCK_KEY])
        yield engine
    finally:
        engine.close()  # ending the session releases the advisory lock


def _series(values: pa.ChunkedArray) -> pl.Series:
    """One Arrow column as a polars series (from_arrow makes a series of a chunked array)."""
    import polars as pl

    out = pl.from_arrow(values)
    assert isinstance(out, pl.Series)
    return out


def application_name() -> str:
    """What a gitops-data session calls itself (pg_stat_activity shows it to whoever waits)."""
    return f"gitops-data pid {os.getpid()}: {this_command()}"[:63]  # NAMEDATALEN - 1


def lock_holder(con: psycopg.Connection) -> str:
    """Who holds the gitops-data advisory lock of the database, and for how long (the session's
    age: gitops-data takes it as it connects); "another process" if PostgreSQL does not say."""
    try:
        row = con.execute(
            """select a.pid, a.application_name, extract(epoch from now() - a.backend_start)
               from pg_locks l join pg_stat_activity a on a.pid = l.pid
               where l.locktype = 'advisory' and l.granted and l.classid = %s and l.objid = %s
                 and l.database = (select oid from pg_database where datname = current_database())
                 and l.pid <> pg_backend_pid()
               limit 1""",
            [ADVISORY_KEY >> 32, ADVISORY_KEY & 0xFFFFFFFF],
        ).fetchone()
    except psycopg.Error:
        return "another process"
    if row is None:
        return "another process"
    pid, name, seconds = row
    who = name or "a session without application_name"
    return f"{who} (server pid {pid}) for {float(seconds or 0):.0f}s"


def _try_advisory_lock(con: psycopg.Connection, key: int) -> bool:
    """Take the session-level advisory lock `key` if it is free."""
    row = con.execute("select pg_try_advisory_lock(%s)", [key]).fetchone()
    assert row is not None  # a select of one value has one row
    return bool(row[0])
