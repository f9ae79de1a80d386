"""Pure: the engine registry. A warehouse location names its engine by its URL scheme (a path with no
scheme: a DuckDB file); this is the one place that tells them apart. Opening imports the engine's
module only then (a command that opens no warehouse pays for no driver).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitops_data.capabilities import DUCKDB, POSTGRES, SPARK, Capabilities
from gitops_data.errors import UnknownEngine

if TYPE_CHECKING:
    from gitops_data.engines.base import Engine

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(\+\w+)?://")


@dataclass(frozen=True)
class EngineKind:
    """One engine of the registry: the URL schemes naming it, what it can do, how to open it."""

    capabilities: Capabilities
    schemes: tuple[str, ...]  # empty: the engine of plain paths
    opener: str  # "module:function" taking (location, timeout), a context manager of an Engine

    @property
    def name(self) -> str:
        return self.capabilities.engine

    @property
    def local_file(self) -> bool:
        """Whether a location of this engine is a file on this machine."""
        return not self.schemes

    def open(self, location: str, timeout: float | None) -> AbstractContextManager[Engine]:
        module, function = self.opener.split(":")
        fn: Callable[[str, float | None], AbstractContextManager[Engine]] = getattr(
            importlib.import_module(module), function
        )
        return fn(location, timeout)


REGISTRY = (
    EngineKind(DUCKDB, (), "gitops_data.engines.duckdb:open_duckdb"),
    EngineKind(POSTGRES, ("postgresql", "postgres"), "gitops_data.engines.postgres:open_postgres"),
    EngineKind(SPARK, ("sc",), "gitops_data.engines.spark:open_spark"),
)

# Where an engine that keeps its catalog apart (Spark) keeps it, unless GITOPS_DATA_CATALOG says
STATE_DIR = ".gitops_data"


def engine_kind(location: str | Path) -> EngineKind:
    """The engine of the warehouse at `location` (UnknownEngine for a URL scheme no engine has)."""
    m = _SCHEME.match(str(location))
    scheme = m.group(1).lower() if m else None
    for kind in REGISTRY:
        if scheme in kind.schemes or (scheme is None and not kind.schemes):
            return kind
    known = ", ".join(f"{s}://" for k in REGISTRY for s in k.schemes)
    raise UnknownEngine(
        f"warehouse {redact(location)}: no engine for the scheme {scheme}:// (known: {known}, or a "
        "DuckDB file path)"
    )


def is_url(location: str | Path) -> bool:
    """Whether `location` names a server (any engine but a local file's)."""
    return not engine_kind(location).local_file


def engine_dialect(location: str | Path) -> str:
    """The sqlglot dialect of the engine behind `location`."""
    return engine_kind(location).capabilities.dialect


def catalog_location(location: str | Path) -> str:
    """The store of the catalog of the warehouse at `location`, for an engine that keeps it apart
    (Spark: parquet tables have no DELETE / UPDATE): GITOPS_DATA_CATALOG (a DuckDB file path or a
    `postgresql://` URL), else the DuckDB file `.gitops_data/catalog-<host>-<port>.duckdb` under the
    working directory, made absolute (processes in other directories must set GITOPS_DATA_CATALOG)."""
    configured = os.environ.get("GITOPS_DATA_CATALOG")
    if configured:
        store = configured if is_url(configured) else str(Path(configured).resolve())
    else:
        server = re.sub(r"[^A-Za-z0-9.]+", "-", str(location).split("://", 1)[-1].split("/", 1)[0])
        store = str((Path(STATE_DIR) / f"catalog-{server.strip('-')}.duckdb").resolve())
    if engine_kind(store).capabilities is SPARK:
        raise UnknownEngine(
            f"GITOPS_DATA_CATALOG={redact(store)}: the catalog of a Spark warehouse is kept in a DuckDB "
            "file or a PostgreSQL database, not in Spark"
        )
    return store


def redact(location: str | Path) -> str:
    """`location` fit for messages and logs: a URL's password replaced by ***."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", str(location))
