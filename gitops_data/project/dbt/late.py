"""Models and tests that query the warehouse while rendering (`run_query` / `statement` over a
table: `dbt_utils.get_column_values`, `get_single_value`, `union_relations`, ...) render when the
build runs, against the builds of the same commit that the plan gives them (never production,
never another commit).

While loading, such a resource is rendered as dbt parses it (`execute` false) to learn what it
refs; its SQL in the project is a stand-in that names its key and reads those refs, so the plan
orders it and the fingerprint covers the template, the macros' files and the data it reads. The
build finds the key in its SQL and renders the resource for real with `run` (see `render_late`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from gitops_data.naming import quote
from gitops_data.project.dbt.jinja import DbtRenderError, ResultTable

MARK = "gitops_data_rendered_at_build"
_KEY = re.compile(r"'([0-9a-f]{32})'\s+as\s+" + MARK, re.I)

# key -> renders the resource with a runner; returns its SQL (plain node names)
_RENDERERS: dict[str, Callable[[BuildRunner], str]] = {}


class NeedsWarehouse(DbtRenderError):
    """A statement reads a table: only a build can render this resource."""

    def __init__(self, sql: str, what: str | None = None):
        super().__init__(
            (what or "statement/run_query reads the warehouse")
            + f", which only a build can answer: {' '.join(sql.split())[:120]!r}"
        )
        self.sql = sql


def late_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def register(key: str, render: Callable[[BuildRunner], str]) -> None:
    _RENDERERS[key] = render


def stand_in(key: str, reads: tuple[str, ...], where_false: bool = False) -> str:
    """The SQL a late resource has in the project: its key, and the models it reads."""
    sources = ", ".join(quote(r) for r in reads)
    return (
        f"select '{key}' as {MARK}"
        + (f" from {sources}" if sources else "")
        + (" where false" if where_false else "")
    )


def key_of(sql: str | None) -> str | None:
    """The key of a late resource whose stand-in is (in) `sql`, else None."""
    found = _KEY.search(sql or "") if sql and MARK in sql.lower() else None
    return found.group(1) if found else None


class LateRenderError(Exception):
    """A late resource cannot be rendered at build time (its project was not loaded here, or the
    render failed)."""


def render_late(key: str, run: BuildRunner) -> str:
    """The SQL of the late resource `key`, rendered now with `run` answering its queries."""
    render = _RENDERERS.get(key)
    if render is None:
        raise LateRenderError(
            f"the resource rendered at build time ({key[:10]}) is not loaded in this process: "
            "load the project of this commit first"
        )
    return render(run)


class BuildRunner:
    """Answers the queries of a render at build time, over the builds `tables` (lower-case node
    name -> physical table) only, every name swapped for its build."""

    def __init__(
        self,
        fetch: Callable[[str], tuple[list[str], list[tuple]]],
        table_columns: Callable[[str], dict[str, str]],
        tables: dict[str, str],
        dialect: str,
    ):
        self._fetch = fetch
        self._table_columns = table_columns
        self.tables = tables
        self.dialect = dialect

    def __call__(self, sql: str) -> tuple[list[str], list[tuple]]:
        from gitops_data.sql import parse_query, rewrite

        parsed = parse_query(sql)
        unknown = sorted(r for r in parsed.references if r.lower() not in self.tables)
        if unknown:
            raise LateRenderError(
                f"a query run while rendering reads {', '.join(unknown)}, which this model does not ref() "
                f"(a build reads only the builds of its own commit): {' '.join(sql.split())[:120]!r}"
            )
        return self._fetch(rewrite(parsed, self.tables, self.dialect))

    def columns(self, name: str) -> list[tuple[str, str]]:
        """(column, type) of the build of node `name`, as the warehouse has them."""
        table = self.tables.get(name.lower())
        if table is None:
            raise LateRenderError(f"{name} is not a model this one refs")
        if table.startswith("("):  # an inlined ephemeral model: names only
            names, _ = self(f"select * from {quote(name)} limit 0")
            return [(n, "unknown") for n in names]
        return list(self._table_columns(table).items())


def runner(
    fetch: Callable[[str], tuple[list[str], list[tuple]]],
    tables: dict[str, str],
    dialect: str,
    table_columns: Callable[[str], dict[str, str]] | None = None,
) -> BuildRunner:
    return BuildRunner(fetch, table_columns or (lambda table: {}), tables, dialect)


def split_table(table: str) -> tuple[str, str]:
    """("schema", "name") of a quoted `"schema"."name"`."""
    schema, _, name = table.partition('"."')
    return schema.strip('"').replace('""', '"'), name.strip('"').replace('""', '"')


def result_table(names: list[str], rows: list[tuple]) -> ResultTable:
    return ResultTable(names, rows)


def fill_late(sql: str, run: BuildRunner) -> str:
    """`sql` (canonical dialect) with each stand-in in it replaced by its resource rendered now
    (plain node names: the caller swaps in the builds)."""
    import sqlglot
    from sqlglot import exp

    from gitops_data.sql import DIALECT

    tree = sqlglot.parse_one(sql, read=DIALECT)
    for select in list(tree.find_all(exp.Select)):
        marked = [e for e in select.expressions if e.alias_or_name.lower() == MARK]
        if not marked or not isinstance(marked[0].this, exp.Literal):
            continue
        real = sqlglot.parse_one(render_late(marked[0].this.name, run), read=DIALECT)
        if select is tree:
            return real.sql(dialect=DIALECT)
        select.replace(exp.Subquery(this=real) if isinstance(select.parent, exp.From) else real)
    return tree.sql(dialect=DIALECT)
