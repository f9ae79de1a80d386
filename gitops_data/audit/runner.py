"""Run a node's declared checks against one build.

Column value checks run through pandera on a Polars frame of just the checked column (never the
whole table); table-level checks (row counts, uniqueness over columns, relationships, SQL
expressions, freshness, types, queries of failing rows) are pushed into the engine as single
aggregate queries. A check that reads another model reads exactly the table the plan gives it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandera.polars as pa

from gitops_data.audit.pandera_checks import PANDERA_KINDS, column_schema, polars_expression_schema
from gitops_data.engines.base import Engine
from gitops_data.naming import failures_table, qualified, quote
from gitops_data.project.checks import DeclaredCheck
from gitops_data.project.dbt.late import fill_late, key_of, runner, split_table
from gitops_data.sql import parse_expression, parse_query, rewrite, type_sql

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
    not_run: bool = False  # could not run (a model it reads has no build yet): pending, not failed


def _failures(engine: Engine, table: str, where: str, cols: str = "*") -> tuple[int, list]:
    count = engine.scalar(f"select count(*) from {table} where {where}")
    sample = engine.fetchall(f"select {cols} from {table} where {where} limit {SAMPLE_SIZE}") if count else []
    return count, [list(r) if len(r) > 1 else r[0] for r in sample]


_STRING_TYPES = ("VARCHAR", "TEXT", "CHARACTER", "CHAR", "STRING")
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "UBIGINT", "UINTEGER")
_FLOAT_TYPES = ("FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL")
# types whose SQL equality is Polars' (not floats: NaN; not intervals: DuckDB's 1 month = 30 days)
_PLAIN_EQUALITY = (*_STRING_TYPES, "DECIMAL", "NUMERIC", "DATE", "TIMESTAMP", "BOOLEAN", "UUID")


def _failing_row_query(table: str, chk: DeclaredCheck, column_type: str) -> str | None:
    """A query that returns a row exactly when pandera would fail `chk` on `table`, or None when the
    check has no such exact form here: not_null on a scalar column that is not a float (pandera
    counts NaN as null), unique on a column whose SQL equality is Polars', isin / notin over strings
    on a string column or integers on an integer one (elsewhere SQL's coercions could pass a value
    pandera fails). Nulls pass a value check, as pandera's ignore_na has it, and are one value for
    unique, as in Polars' is_duplicated and SQL's GROUP BY."""
    kind = re.sub(r"\(.*\)", "", column_type.upper()).strip()
    if not re.fullmatch(r"[A-Z0-9 ]+", kind):  # a list, struct, map: no plain SQL comparison
        return None
    col, integer = quote(chk.column or ""), kind in _INTEGER_TYPES
    if chk.kind == "not_null":
        return None if kind in _FLOAT_TYPES else f"select 1 from {table} where {col} is null limit 1"
    if chk.kind == "unique":
        if not (integer or kind.startswith(_PLAIN_EQUALITY)):
            return None
        return f"select 1 from {table} group by {col} having count(*) > 1 limit 1"
    values = chk.args
    if chk.kind not in ("isin", "notin") or not isinstance(values, list | tuple) or not values:
        return None
    if all(isinstance(v, str) for v in values) and kind.startswith(_STRING_TYPES):
        listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    elif all(type(v) is int for v in values) and integer:
        listed = ", ".join(str(v) for v in values)
    else:
        return None
    test = "not in" if chk.kind == "isin" else "in"
    return f"select 1 from {table} where {col} is not null and {col} {test} ({listed}) limit 1"


def _passes_in_engine(engine: Engine, table: str, chk: DeclaredCheck, columns: dict[str, str]) -> bool:
    """True when one query in the engine shows that pandera would find no failing row (the common
    case, without moving the column into Polars); False when rows may fail, the check has no exact
    SQL form or the query fails: pandera then decides, and gives the count and the sample."""
    if chk.column is None or chk.column not in columns:
        return False
    query = _failing_row_query(table, chk, columns[chk.column])
    if query is None:
        return False
    try:
        return not engine.fetchall(query)
    except Exception:  # noqa: BLE001 - whatever the engine says, pandera decides as it did before
        return False


def _run_pandera(engine: Engine, table: str, chk: DeclaredCheck) -> tuple[int, list]:
    if chk.kind == "expression":
        schema = polars_expression_schema(chk)
        frame = engine.frame(f"select * from {table}")
    else:
        assert chk.column is not None  # every other pandera check is a column's
        schema = column_schema(chk)
        frame = engine.frame(f"select {quote(chk.column)} from {table}")
    try:
        schema.validate(frame, lazy=True)
        return 0, []
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return cases.height, cases["failure_case"].head(SAMPLE_SIZE).to_list()


def run_check(
    engine: Engine,
    schema: str,
    table_name: str,
    chk: DeclaredCheck,
    columns: dict[str, str],
    reads: dict[str, str],
    check_hash: str | None = None,
) -> CheckResult:
    """Run one check on `schema.table_name`. `reads`: lower-case model name -> the qualified table
    the plan picked for each other model the check reads; `check_hash` the hash to record."""
    table = qualified(schema, table_name)

    def result(failed: int, message: str, sample: list | None = None) -> CheckResult:
        return CheckResult(
            chk.name, check_hash or chk.hash, chk.severity, failed == 0, failed, message, sample or []
        )

    if chk.column is not None and chk.column not in columns:
        return result(1, f"column {chk.column!r} is not in the table (columns: {', '.join(columns)})")
    try:
        a = chk.args
        if chk.kind == "type":
            assert chk.column is not None  # a type check is a column's
            want = engine.type_name(type_sql(a, engine.dialect))
            got = columns[chk.column]
            return result(0 if want == got else 1, f"declared {want}, table has {got}")
        if chk.kind in PANDERA_KINDS and _passes_in_engine(engine, table, chk, columns):
            return result(0, f"0 row(s) fail {chk.description}")
        if chk.kind in PANDERA_KINDS or (chk.kind == "expression" and "polars" in a):
            failed, sample = _run_pandera(engine, table, chk)
            return result(failed, f"{failed} row(s) fail {chk.description}", sample)
        if chk.kind in ("row_count", "not_empty"):
            n = engine.count(table)
            lo, hi = (1, None) if chk.kind == "not_empty" else (a["min"], a["max"])
            ok = (lo is None or n >= lo) and (hi is None or n <= hi)
            return result(0 if ok else 1, f"{n} rows (expected min {lo}, max {hi})")
        if chk.kind == "unique_combination":
            cols = ", ".join(quote(c) for c in a)
            dup = f"(select {cols}, count(*) as n from {table} group by {cols} having count(*) > 1) as d"
            failed = engine.scalar(f"select coalesce(sum(n), 0) from {dup}")
            sample = engine.fetchall(f"select * from {dup} limit {SAMPLE_SIZE}")
            return result(
                int(failed),
                f"{failed} row(s) share ({', '.join(a)}) with another row",
                [list(r) for r in sample],
            )
        if chk.kind == "relationship":
            other = reads[a["to"].lower()]
            where = (
                f"{quote(a['column'])} is not null and {quote(a['column'])} not in "
                f"(select {quote(a['field'])} from {other} where {quote(a['field'])} is not null)"
            )
            failed, sample = _failures(engine, table, where, quote(a["column"]))
            return result(
                failed, f"{failed} row(s) have {a['column']} missing from {a['to']}.{a['field']}", sample
            )
        if chk.kind == "expression":
            expr = rewrite(parse_expression(a["sql"]), reads, engine.dialect)
            failed, sample = _failures(engine, table, f"not coalesce(({expr}), true)")
            return result(failed, f"{failed} row(s) do not satisfy {a['sql']}", sample)
        if chk.kind == "returns_no_rows":
            query = _test_query(engine, a["sql"], reads)
            failed = int(engine.scalar(f"select count(*) from ({query}) as q"))
            sample = engine.fetchall(f"select * from ({query}) as q limit {SAMPLE_SIZE}") if failed else []
            rows = [list(r) if len(r) > 1 else r[0] for r in sample]
            kept = ""
            if a.get("store_failures"):
                rows_sql = _test_query(engine, a["store_failures"]["sql"], reads)
                name = store_failures(engine, schema, table_name, chk.name, rows_sql)
                kept = f"; failing rows in {schema}.{name}"
            return result(failed, f"{failed} row(s) returned by {a['test']}{kept}", rows)
        if chk.kind == "freshness":
            col = quote(a["column"])
            # a timestamptz is read in UTC (a plain cast would read it in the session's time zone)
            utc = (
                f"timezone('UTC', max({col}))"
                if columns.get(a["column"], "").upper() == "TIMESTAMP WITH TIME ZONE"
                else f"cast(max({col}) as timestamp)"
            )
            latest = engine.scalar(f"select {utc} from {table}")
            limit = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=a["max_age"])
            ok = latest is not None and latest >= limit
            return result(
                0 if ok else 1, f"latest {a['column']} is {latest}; must be after {limit:%Y-%m-%d %H:%M:%S}"
            )
    except Exception as exc:  # an engine error, or a Polars expression that does not evaluate
        return result(1, f"check failed to evaluate: {' '.join(str(exc).split())[:500]}")
    raise ValueError(f"unknown check kind {chk.kind!r}")


def _test_query(engine: Engine, sql: str, reads: dict[str, str]) -> str:
    """A dbt test's query over the builds the plan gives it, in the engine's dialect (one that
    queries the warehouse while rendering is rendered now)."""
    if key_of(sql) is not None:
        fetch = lambda q: (engine.query_columns(q), engine.fetchall(q))  # noqa: E731
        run = runner(fetch, reads, engine.dialect, lambda t: engine.columns(*split_table(t)))
        sql = fill_late(sql, run)
    return rewrite(parse_query(sql), reads, engine.dialect)


def store_failures(engine: Engine, schema: str, build_table: str, check: str, query: str) -> str:
    """dbt's `store_failures`: the failing rows of `check` as a table beside its build, made again
    each time the check runs (empty when it passes); returns its name. Always a table, also for
    `store_failures_as: view`: a view would keep the builds it reads from being collected."""
    name = failures_table(build_table, check)
    present = engine.objects(schema, [name]).get(name)
    with engine.transaction():
        if present is not None:
            engine.drop(present.lower(), schema, name)
        engine.create_table_as(schema, name, query)
    return name


def not_run(chk: DeclaredCheck, check_hash: str, why: str) -> CheckResult:
    """The result of a check that could not run yet: recorded nowhere, re-planned next time."""
    return CheckResult(chk.name, check_hash, chk.severity, False, None, f"not run: {why}", not_run=True)
