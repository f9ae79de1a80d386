"""Pure: what a warehouse engine can do, declared once per engine; the core asks instead of assuming.

Each engine module sets its class's `capabilities` to one of the declarations below (they live here,
below every layer, so that loading a project can ask for the target's identifier limit without
importing an engine). `engines/registry.py` maps a warehouse location to its engine and these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TurnTaking(StrEnum):
    """How gitops-data processes take turns on one warehouse."""

    FILE_LOCK = "file lock"  # an flock on a file beside the database (an embedded engine)
    ADVISORY_LOCK = "advisory lock"  # a session-level lock the server releases with the session
    LEASE_ROW = "lease row"  # a row in the warehouse with a heartbeat and an expiry
    CATALOG_STORE = "the catalog store's"  # the turn of the store the catalog is kept in (its lock)


class PublishStrategy(StrEnum):
    """How a publish flips an environment's views."""

    TRANSACTION = "one transaction"  # every view and the catalog record commit together
    PER_VIEW = "per-view atomic replace"  # after everything is built and audited; a mixed window


class ViewBinding(StrEnum):
    """When a view's `select *` is resolved to columns."""

    LATE = "when read"  # the stored text is bound at each query
    EARLY = "when created"  # the columns are fixed at CREATE VIEW; a changed source needs a new view


@dataclass(frozen=True)
class Capabilities:
    """What one engine has. The fields are facts about the engine, never about a deployment."""

    engine: str  # the engine's name (registry key)
    dialect: str  # sqlglot's name for its SQL
    transactional_ddl: bool  # CREATE/DROP TABLE and VIEW roll back with a transaction
    turns: TurnTaking
    returning: bool  # UPDATE ... RETURNING
    identifier_quote: str  # the character that quotes an identifier (as gitops-data writes SQL)
    max_identifier: int | None  # longest identifier the engine keeps whole (None: no limit)
    ctas_row_count: bool  # CREATE TABLE AS tells how many rows it wrote (else: a count after)
    view_binding: ViewBinding
    grants: bool  # roles and GRANT SELECT
    schema_rename: bool  # ALTER SCHEMA ... RENAME
    publish: PublishStrategy
    json_type: str  # column type of the catalog's JSON documents
    local_now: str  # SQL of the current time as a timestamp without time zone

    @property
    def advisory_locks(self) -> bool:
        return self.turns == TurnTaking.ADVISORY_LOCK


DUCKDB = Capabilities(
    engine="duckdb",
    dialect="duckdb",
    transactional_ddl=True,
    turns=TurnTaking.FILE_LOCK,
    returning=True,
    identifier_quote='"',
    max_identifier=None,
    ctas_row_count=True,
    view_binding=ViewBinding.LATE,
    grants=False,
    schema_rename=True,
    publish=PublishStrategy.TRANSACTION,
    json_type="json",
    local_now="localtimestamp",
)

POSTGRES = Capabilities(
    engine="postgres",
    dialect="postgres",
    transactional_ddl=True,
    turns=TurnTaking.ADVISORY_LOCK,
    returning=True,
    identifier_quote='"',
    max_identifier=63,
    ctas_row_count=True,
    view_binding=ViewBinding.EARLY,
    grants=True,
    schema_rename=True,
    publish=PublishStrategy.TRANSACTION,
    json_type="text",  # psycopg would parse `json` into objects; the catalog stores JSON text
    local_now="localtimestamp",
)

# Spark through Spark Connect (measured on 4.3): parquet tables have no DELETE or UPDATE, so the
# catalog lives in a separate store (a DuckDB file or a PostgreSQL database) and the processes take
# turns on that store's lock; no transactions, no RETURNING (the store has it, the data engine not).
SPARK = Capabilities(
    engine="spark",
    dialect="spark",
    transactional_ddl=False,
    turns=TurnTaking.CATALOG_STORE,
    returning=False,
    identifier_quote='"',  # with spark.sql.ansi.doubleQuotedIdentifiers=true on the session
    max_identifier=None,
    ctas_row_count=False,
    view_binding=ViewBinding.EARLY,
    grants=False,
    schema_rename=False,
    publish=PublishStrategy.PER_VIEW,
    json_type="string",
    local_now="localtimestamp()",  # a bare `localtimestamp` is a column name to Spark
)

DECLARED = {c.engine: c for c in (DUCKDB, POSTGRES, SPARK)}
_BY_DIALECT = {c.dialect: c for c in DECLARED.values()}


def for_dialect(dialect: str) -> Capabilities | None:
    """The declared engine speaking sqlglot's `dialect` (None: no engine of ours speaks it)."""
    return _BY_DIALECT.get(dialect)
