"""dbt unit tests (`unit_tests:` with `given` / `expect`, dbt 1.8+), run while loading, on their
fixtures only, by an in-memory DuckDB (external access off): each input a table of its fixture rows
(the columns the fixture leaves out are NULL), the model's query over them, compared with the
expected rows as dbt compares them (the expected columns only, as multisets, the expected values
cast to the types the query gives). A failing unit test is a validate error at its file and line,
so it blocks like any check, once per commit."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gitops_data.naming import quote
from gitops_data.project.dbt.late import BuildRunner, LateRenderError


class UnitTestError(ValueError):
    """A unit test that cannot run (a fixture of an unknown shape, an unsupported override)."""


@dataclass(frozen=True)
class Fixture:
    """One input's rows (dicts) or query."""

    rows: list[dict[str, Any]] | None = None
    sql: str | None = None


def fixture_of(entry: dict[str, Any], read_file: Any = None) -> Fixture:
    """A `given` entry's or `expect`'s fixture: rows (format dict or csv) or sql."""
    fmt = str(entry.get("format", "dict"))
    rows = entry.get("rows")
    if entry.get("fixture") is not None:
        if read_file is None:
            raise UnitTestError("fixture files are not supported; write the rows inline")
        rows = read_file(str(entry["fixture"]), fmt)
    if fmt == "sql":
        if not isinstance(rows, str):
            raise UnitTestError("format: sql needs `rows:` holding a query")
        return Fixture(sql=rows)
    if fmt == "csv":
        if not isinstance(rows, str):
            raise UnitTestError("format: csv needs `rows:` holding CSV text")
        return Fixture(
            rows=[
                {k.strip(): _csv_value(v) for k, v in r.items()}
                for r in csv.DictReader(io.StringIO(rows.strip()))
            ]
        )
    if fmt != "dict":
        raise UnitTestError(f"fixture format {fmt!r} is not supported (dict, csv or sql)")
    if rows is None:
        return Fixture(rows=[])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UnitTestError("`rows:` must be a list of mappings (column: value)")
    return Fixture(rows=[dict(r) for r in rows])


def _csv_value(value: str | None) -> Any:
    """A CSV fixture's cell as the input would hold it: NULL, a number, or text (dbt casts it to the
    input's column type; numbers and text are what that type is, almost always)."""
    if value is None or value.strip().lower() == "null":
        return None
    text = value.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _literal(value: Any) -> str:
    from sqlglot import exp

    return exp.convert(value).sql(dialect="duckdb")


def _rows_sql(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "select " + ", ".join(f"null as {quote(c)}" for c in columns) + " where false"
    selects = ["select " + ", ".join(f"{_literal(r.get(c))} as {quote(c)}" for c in columns) for r in rows]
    return " union all ".join(selects)


def run_unit_test(
    model_sql: str | Callable[[BuildRunner], str],
    inputs: dict[str, tuple[Fixture, list[str] | None]],
    expect: Fixture,
) -> str | None:
    """None when the model's query over `inputs` (node name -> fixture and the input's columns,
    when known) gives the `expect` rows; else what differs. `model_sql` may be a render that
    queries its inputs (a model that queries the warehouse while rendering): it gets a runner over
    the fixtures."""
    import duckdb

    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        for name, (fixture, known) in inputs.items():
            if fixture.sql is not None:
                select = fixture.sql
            else:
                given = list(dict.fromkeys(c for r in fixture.rows or [] for c in r))
                unknown = [
                    c for c in given if known is not None and c.lower() not in {k.lower() for k in known}
                ]
                if unknown:
                    return f"the fixture of {name} has column(s) {', '.join(unknown)}, which {name} does not"
                columns = list(known or []) + [c for c in given if c not in (known or [])]
                select = _rows_sql(fixture.rows or [], columns or ["_empty"])
            con.execute(f"create table {quote(name)} as {select}")
        if not isinstance(model_sql, str):
            tables = {name.lower(): quote(name) for name in inputs}

            def fetch(sql: str) -> tuple[list[str], list[tuple]]:
                result = con.execute(sql)
                return [d[0] for d in result.description or []], result.fetchall()

            def table_columns(table: str) -> dict[str, str]:
                return {r[0]: r[1] for r in con.execute(f"describe {table}").fetchall()}

            model_sql = model_sql(BuildRunner(fetch, table_columns, tables, "duckdb"))
        con.execute(f"create table __actual as {model_sql}")
        types = {r[0]: r[1] for r in con.execute("describe __actual").fetchall()}
        if expect.sql is not None:
            con.execute(f"create table __expected as {expect.sql}")
            wanted = [r[0] for r in con.execute("describe __expected").fetchall()]
        else:
            wanted = list(dict.fromkeys(c for r in expect.rows or [] for c in r))
            missing = [c for c in wanted if c not in types]
            if missing:
                return f"the model has no column {', '.join(missing)} (it has {', '.join(types)})"
            if not wanted:
                wanted = list(types)
            casts = [
                "select "
                + ", ".join(f"cast({_literal(r.get(c))} as {types[c]}) as {quote(c)}" for c in wanted)
                for r in expect.rows or []
            ]
            empty = (
                "select "
                + ", ".join(f"cast(null as {types[c]}) as {quote(c)}" for c in wanted)
                + " where false"
            )
            con.execute(f"create table __expected as {' union all '.join(casts) or empty}")
        listed = ", ".join(quote(c) for c in wanted)
        extra = con.execute(
            f"select {listed} from __actual except all select {listed} from __expected"
        ).fetchall()
        absent = con.execute(
            f"select {listed} from __expected except all select {listed} from __actual"
        ).fetchall()
    except (duckdb.Error, LateRenderError) as exc:
        return f"cannot run: {' '.join(str(exc).split())[:300]}"
    finally:
        con.close()
    if not extra and not absent:
        return None
    parts = []
    if absent:
        parts.append(f"{len(absent)} expected row(s) missing, e.g. {absent[0]}")
    if extra:
        parts.append(f"{len(extra)} unexpected row(s), e.g. {extra[0]}")
    return "; ".join(parts) + f" (columns {', '.join(wanted)})"
