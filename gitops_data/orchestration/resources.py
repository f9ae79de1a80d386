"""Dagster resources: the warehouse (dagster-duckdb, plus the cross-process lock) and the workspace."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from gitops_data.deployment.core import Deployment
from gitops_data.engines.duckdb import open_duckdb


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource, with every connection taken under the warehouse's `flock` so the
    webserver, daemon, run workers and CLI never fight over DuckDB's single-writer file lock."""

    @contextlib.contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with open_duckdb(self.database) as engine:
            yield engine.con


class GitopsResource(dg.ConfigurableResource):
    """Where the data repo is; gives the Deployment that loads projects at commits and plans."""

    repo: str
    warehouse: str

    @property
    def workspace(self) -> Deployment:
        return Deployment(self.repo, self.warehouse)
