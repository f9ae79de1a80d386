"""Constant statements (`run_query('select ...')` that reads no table), evaluated while rendering by
the engine itself: an in-memory DuckDB with no database file, no extensions loaded and no access to
files, so it answers what the warehouse would (`AT TIME ZONE`, date arithmetic) and nothing else."""

from __future__ import annotations

import threading
from typing import Any

from gitops_data.project.dbt.jinja import DbtRenderError, ResultTable
from gitops_data.project.dbt.late import NeedsWarehouse

_LOCK = threading.Lock()
_CONNECTION: Any = None


def _connection() -> Any:
    global _CONNECTION
    if _CONNECTION is None:
        import duckdb

        con = duckdb.connect(":memory:", config={"enable_external_access": False})
        _CONNECTION = con
    return _CONNECTION


def reads_tables(sql: str, dialect: str) -> bool:
    """True when `sql` reads a table (then only a build can answer it)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(sql, dialect=dialect)
    except SqlglotError as exc:
        raise DbtRenderError(f"statement: cannot parse {' '.join(sql.split())[:80]!r}: {exc}") from None
    if not isinstance(tree, exp.Query):
        return True
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return any(t.name.lower() not in ctes for t in tree.find_all(exp.Table))


def constant_query(sql: str, dialect: str) -> ResultTable:
    """Evaluate a query that reads no table with an in-memory DuckDB (transpiled from `dialect`)."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    if reads_tables(sql, dialect):
        raise NeedsWarehouse(sql)
    text = sql
    if dialect != "duckdb":
        try:
            text = sqlglot.transpile(sql, read=dialect, write="duckdb")[0]
        except SqlglotError as exc:
            raise DbtRenderError(f"statement: cannot read {' '.join(sql.split())[:80]!r}: {exc}") from None
    import duckdb

    with _LOCK:
        cur = _connection().cursor()
        try:
            result = cur.execute(text)
            names = [d[0] for d in result.description or []]
            rows = result.fetchall()
        except duckdb.Error as exc:
            why = " ".join(str(exc).split())[:300]
            raise DbtRenderError(
                f"statement: cannot evaluate {' '.join(sql.split())[:120]!r}: {why}"
            ) from None
        finally:
            cur.close()
    return ResultTable(names, [tuple(r) for r in rows])
