"""Run a node's declared checks against one physical table.

Column value checks run through pandera on a Polars frame of just the checked column (never the
whole table); table-level checks (row counts, uniqueness over columns, relationships, SQL
expressions, freshness, types) are pushed into DuckDB as single aggregate queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import duckdb
import pandera.polars as pa

from gitops_data.audit.declared import DeclaredCheck
from gitops_data.audit.pandera_checks import PANDERA_KINDS, column_schema, polars_expression_schema
from gitops_data.naming import qualified, quote
from gitops_data.sql import parse_expression
from gitops_data.warehouse.catalog import now

SAMPLE_SIZE = 5


@dataclass(frozen=True)
class CheckResult:
    name: str
    hash: str
    severity: str
    passed: bool
    failed_rows: int | None
    message: str
    sample: list[Any] = field(default_factory=list)


def _failures(con: duckdb.DuckDBPyConnection, table: str, where: str, cols: str = "*") -> tuple[int, list]:
    count = con.execute(f"select count(*) from {table} where {where}").fetchall()[0][0]
    sample = con.execute(f"select {cols} from {table} where {where} limit {SAMPLE_SIZE}").fetchall() if count else []
    return count, [list(r) if len(r) > 1 else r[0] for r in sample]


def _run_pandera(con: duckdb.DuckDBPyConnection, table: str, chk: DeclaredCheck) -> tuple[int, list]:
    if chk.kind == "expression":
        schema = polars_expression_schema(chk)
        frame = con.sql(f"select * from {table}").pl()
    else:
        schema = column_schema(chk)
        frame = con.sql(f"select {quote(chk.column)} from {table}").pl()
    try:
        schema.validate(frame, lazy=True)
        return 0, []
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return cases.height, cases["failure_case"].head(SAMPLE_SIZE).to_list()


def run_check(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    table_name: str,
    chk: DeclaredCheck,
    columns: dict[str, str],
    resolve_table: Callable[[str], str],
) -> CheckResult:
    """Run one check. `resolve_table(model)` gives the qualified table of another model of the same
    commit (for relationships)."""
    table = qualified(schema, table_name)

    def result(failed: int, message: str, sample: list | None = None) -> CheckResult:
        return CheckResult(chk.name, chk.hash, chk.severity, failed == 0, failed, message, sample or [])

    if chk.column is not None and chk.column not in columns:
        return result(1, f"column {chk.column!r} is not in the table (columns: {', '.join(columns)})")
    try:
        a = chk.args
        if chk.kind == "type":
            want = con.execute(f"select typeof(cast(null as {a}))").fetchall()[0][0]
            got = columns[chk.column]
            return result(0 if want == got else 1, f"declared {want}, table has {got}")
        if chk.kind in PANDERA_KINDS or (chk.kind == "expression" and "polars" in a):
            failed, sample = _run_pandera(con, table, chk)
            return result(failed, f"{failed} row(s) fail {chk.description}", sample)
        if chk.kind in ("row_count", "not_empty"):
            n = con.execute(f"select count(*) from {table}").fetchall()[0][0]
            lo, hi = (1, None) if chk.kind == "not_empty" else (a["min"], a["max"])
            ok = (lo is None or n >= lo) and (hi is None or n <= hi)
            return result(0 if ok else 1, f"{n} rows (expected min {lo}, max {hi})")
        if chk.kind == "unique_combination":
            cols = ", ".join(quote(c) for c in a)
            dup = f"(select {cols}, count(*) as n from {table} group by all having count(*) > 1)"
            failed = con.execute(f"select coalesce(sum(n), 0) from {dup}").fetchall()[0][0]
            sample = con.execute(f"select * from {dup} limit {SAMPLE_SIZE}").fetchall()
            return result(int(failed), f"{failed} row(s) share ({', '.join(a)}) with another row", [list(r) for r in sample])
        if chk.kind == "relationship":
            other = resolve_table(a["to"])
            where = (f"{quote(a['column'])} is not null and {quote(a['column'])} not in "
                     f"(select {quote(a['field'])} from {other} where {quote(a['field'])} is not null)")
            failed, sample = _failures(con, table, where, quote(a["column"]))
            return result(failed, f"{failed} row(s) have {a['column']} missing from {a['to']}.{a['field']}", sample)
        if chk.kind == "expression":
            expr = parse_expression(a["sql"])
            failed, sample = _failures(con, table, f"not coalesce(({expr}), true)")
            return result(failed, f"{failed} row(s) do not satisfy {a['sql']}", sample)
        if chk.kind == "freshness":
            latest = con.execute(f"select max({quote(a['column'])})::timestamp from {table}").fetchall()[0][0]
            limit = now() - timedelta(seconds=a["max_age"])
            ok = latest is not None and latest >= limit
            return result(0 if ok else 1, f"latest {a['column']} is {latest}; must be after {limit:%Y-%m-%d %H:%M:%S}")
    except (duckdb.Error, ValueError, TypeError, SyntaxError, NameError, AttributeError) as exc:
        return result(1, f"check could not run: {exc}")
    raise ValueError(f"unknown check kind {chk.kind!r}")


def run_checks(con, schema, table_name, checks, resolve_table) -> list[CheckResult]:
    from gitops_data.warehouse.builder import table_columns

    columns = table_columns(con, schema, table_name)
    return [run_check(con, schema, table_name, c, columns, resolve_table) for c in checks]


