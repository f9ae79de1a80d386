"""Warehouse engines behind one interface (`Engine`); `open_warehouse` picks one for a location."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from gitops_data.engines.base import Engine


@contextlib.contextmanager
def open_warehouse(location: str | Path, timeout: float | None = None) -> Iterator[Engine]:
    """A short-lived connection to the warehouse at `location` (a DuckDB file path)."""
    from gitops_data.engines.duckdb import open_duckdb

    with open_duckdb(location, timeout) as engine:
        yield engine


@contextlib.contextmanager
def step_connection(location: str | Path, timeout: float | None = None) -> Iterator[Engine]:
    """One connection for a whole Dagster step (see engines.duckdb.step_connection)."""
    from gitops_data.engines.duckdb import step_connection as duckdb_step

    with duckdb_step(location, timeout) as engine:
        yield engine


__all__ = ["Engine", "open_warehouse", "step_connection"]
