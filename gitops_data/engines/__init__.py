"""Warehouse engines behind one interface (`Engine`); `open_warehouse` picks one for a location:
a path is a DuckDB file (the embedded default), a `postgresql://` URL a PostgreSQL database."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path

from gitops_data.engines.base import Engine
from gitops_data.engines.locations import engine_dialect, is_url, redact

_step_engine: contextvars.ContextVar[tuple[str, Engine] | None] = contextvars.ContextVar(
    "gitops_step_engine", default=None
)


@contextlib.contextmanager
def open_warehouse(location: str | Path, timeout: float | None = None) -> Iterator[Engine]:
    """A short-lived connection to the warehouse at `location`, holding the warehouse's lock (or the
    connection of the enclosing `step_connection` for the same warehouse)."""
    location = str(location)
    shared = _step_engine.get()
    if shared is not None and shared[0] == location:
        yield shared[1]
        return
    if is_url(location):
        from gitops_data.engines.postgres import open_postgres as opener
    else:
        from gitops_data.engines.duckdb import open_duckdb as opener
    with opener(location, timeout) as engine:
        yield engine


@contextlib.contextmanager
def step_connection(location: str | Path, timeout: float | None = None) -> Iterator[Engine]:
    """One connection (and one hold of the lock) for everything inside: a Dagster step resolves its
    inputs, writes its build and audits it without reconnecting (a connect costs tens of ms)."""
    with open_warehouse(location, timeout) as engine:
        token = _step_engine.set((str(location), engine))
        try:
            yield engine
        finally:
            _step_engine.reset(token)


__all__ = ["Engine", "engine_dialect", "is_url", "open_warehouse", "redact", "step_connection"]
