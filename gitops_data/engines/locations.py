"""Pure: what a warehouse location names (a DuckDB file path or a PostgreSQL URL)."""

from __future__ import annotations

import re
from pathlib import Path

_URL = re.compile(r"^(postgresql|postgres)(\+\w+)?://", re.IGNORECASE)


def is_url(location: str | Path) -> bool:
    """Whether `location` is a server URL (PostgreSQL) rather than a DuckDB file path."""
    return bool(_URL.match(str(location)))


def engine_dialect(location: str | Path) -> str:
    """The sqlglot dialect of the engine behind `location`."""
    return "postgres" if is_url(location) else "duckdb"


def redact(location: str | Path) -> str:
    """`location` fit for messages and logs: a URL's password replaced by ***."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", str(location))
