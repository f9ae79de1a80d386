"""`validate`'s read of the last builds' columns (for the models nothing static describes): read
only, never creating a warehouse file, never waiting for a warehouse another process holds (it
skips, and says so in one line)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from gitops_data.capabilities import TurnTaking
from gitops_data.engines import Engine, engine_kind, redact
from gitops_data.engines.locations import catalog_location
from gitops_data.project.columns import BuiltColumns
from gitops_data.project.schema import Settings
from gitops_data.warehouse.catalog import last_build_columns

# A PostgreSQL catalog is read without the gitops-data lock; these keep a held table from stalling it.
_PG_OPTIONS = "-c lock_timeout=1000 -c statement_timeout=5000 -c default_transaction_read_only=on"


class _Skipped(Exception):
    """The warehouse could not be read at once: the message says why, for the one-line note."""


@dataclass
class LastBuildReader:
    """A `LastBuilt` for `load_project`: the last build's columns from the warehouse at `location`.
    `note`: why they were not read, when the warehouse exists but could not be read at once."""

    location: str
    note: str | None = None

    def __call__(self, settings: Settings, models: list[str]) -> dict[str, BuiltColumns]:
        try:
            with _read_only(self.location) as engine:
                if engine is None:
                    return {}
                rows = last_build_columns(engine, settings.meta_schema, models)
        except _Skipped as exc:
            self.note = f"columns of the last builds not read: {exc}"
            return {}
        except Exception as exc:  # the warehouse's own errors: a damaged file, a lost server
            if not type(exc).__module__.startswith(("duckdb", "psycopg")):
                raise
            self.note = f"columns of the last builds not read: {type(exc).__name__}: " + " ".join(
                str(exc).split()
            )
            return {}
        return {m: BuiltColumns(tuple(names), commit, _when(at)) for m, (commit, at, names) in rows.items()}


def _when(at: datetime | None) -> str:
    return f"built {at:%Y-%m-%d %H:%M} UTC" if at is not None else ""


@contextlib.contextmanager
def _read_only(location: str) -> Iterator[Engine | None]:
    """A read-only connection to the warehouse's catalog, or None where there is none (no file).
    An engine that keeps its catalog apart (Spark) is read in that store; Spark is never opened."""
    if engine_kind(location).capabilities.turns is TurnTaking.CATALOG_STORE:
        location = catalog_location(location)
    if not engine_kind(location).local_file:
        with _postgres(location) as pg:
            yield pg
        return
    if not os.path.isfile(location):
        yield None
        return
    import duckdb

    from gitops_data.engines.duckdb import DuckDBEngine
    from gitops_data.engines.holders import describe_duckdb_holder, describe_lock_record

    with _shared_lock(f"{location}.lock", describe_lock_record):
        try:
            con = duckdb.connect(location, read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            raise _Skipped(
                f"warehouse {location} is held open by {describe_duckdb_holder(str(exc))}"
            ) from None
        try:
            yield DuckDBEngine(con)
        finally:
            con.close()


@contextlib.contextmanager
def _shared_lock(path: str, describe) -> Iterator[None]:
    """The warehouse's lock file shared (a gitops-data process writing holds it exclusively: then
    _Skipped at once); no lock file, no gitops-data process has used the warehouse."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _Skipped(f"the warehouse is busy ({describe(os.pread(fd, 4096, 0))})") from None
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _postgres(url: str) -> Iterator[Engine]:
    import psycopg

    from gitops_data.engines.postgres import PostgresEngine, libpq_url

    try:
        con = psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=3, options=_PG_OPTIONS)
    except psycopg.OperationalError as exc:
        raise _Skipped(f"cannot connect to {redact(url)}: {' '.join(str(exc).split())}") from None
    try:
        yield PostgresEngine(con, url)
    finally:
        con.close()
