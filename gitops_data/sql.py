"""SQL handling with sqlglot: parse a model's query, find what it references, canonicalize, rewrite names.

A model's SQL must be exactly one query (SELECT / WITH / set operation / VALUES). It may read only
the project's own nodes, its CTEs, and a few generator table functions: no files, no other
databases, no DDL. That is the boundary that keeps a model from reaching outside the project.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
import sqlglot.dialects.duckdb  # noqa: F401 - the models' dialect: imported with this module, not by a first parse
from sqlglot import exp
from sqlglot.errors import ParseError

from gitops_data.errors import SqlError
from gitops_data.naming import quote

DIALECT = "duckdb"
# Table-valued functions that only generate rows; everything else (read_csv, read_parquet,
# sqlite_scan, glob, ...) can reach files or other systems and is refused.
_ALLOWED_TABLE_FUNCTIONS = (exp.GenerateSeries, exp.Unnest, exp.ExplodingGenerateSeries)
_FORBIDDEN_FUNCTIONS = {
    "read_csv",
    "read_csv_auto",
    "read_parquet",
    "parquet_scan",
    "read_json",
    "read_json_auto",
    "read_ndjson",
    "read_text",
    "read_blob",
    "glob",
    "sqlite_scan",
    "postgres_scan",
    "mysql_scan",
    "iceberg_scan",
    "delta_scan",
    "getenv",
    "load_extension",
    "query",
    "query_table",
}


@dataclass(frozen=True)
class ParsedSql:
    """A parsed model query and the plain names it reads."""

    tree: exp.Expr
    references: frozenset[str]

    @functools.cached_property
    def canonical(self) -> str:
        """Whitespace- and comment-independent text of the query (input of the fingerprint)."""
        return self.tree.sql(dialect=DIALECT, comments=False)


def _is_cte_reference(table: exp.Table) -> bool:
    """Whether `table` names a CTE visible at its position (by scope, as DuckDB resolves it: a
    non-recursive CTE sees only the CTEs before it, not itself, so `with a as (select * from a)`
    reads the model `a`)."""
    name = table.name.lower()
    prev: exp.Expr = table
    node: exp.Expr | None = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            ctes = node.expressions
            idx = next((i for i, c in enumerate(ctes) if c is prev), len(ctes))
            visible = ctes if node.args.get("recursive") else ctes[:idx]
            if name in {c.alias_or_name.lower() for c in visible}:
                return True
        elif (
            isinstance(node, exp.Query)
            and node.args.get("with_") is not None
            and prev is not node.args["with_"]
        ):
            if name in {c.alias_or_name.lower() for c in node.args["with_"].expressions}:
                return True
        prev, node = node, node.parent
    return False


_QUERY_STARTS = (
    "select",
    "with",
    "values",
    "from",
    "(",
    "table",
    "pivot",
    "unpivot",
    "describe",
    "summarize",
)


def _parse_error_message(sql: str, err: dict) -> str:
    """sqlglot's parse error in the user's words: what was expected where, at which line of the SQL."""
    where = f" (SQL line {err['line']}, column {err['col']})" if err.get("line") else ""
    first_word = (sql.strip().split(None, 1) or [""])[0].lower()
    description = err.get("description", "")
    near = (err.get("highlight") or "").strip()
    if not first_word.startswith(_QUERY_STARTS):
        return (
            f"cannot parse SQL{where}: a query starts with SELECT, WITH, FROM or VALUES, not {first_word!r}"
        )
    missing = re.match(r"Required keyword: '(\w+)' missing for <class '[\w.]+\.(\w+)'>", description)
    if missing:
        part = {"Where": "WHERE needs a condition", "Having": "HAVING needs a condition"}.get(
            missing.group(2), f"{missing.group(2).upper()} is incomplete"
        )
        return f"cannot parse SQL{where}: {part} (near {near!r})"
    if description == "Invalid expression / Unexpected token":
        before = err.get("start_context", "").strip()[-40:]
        return f"cannot parse SQL{where}: unexpected {near!r} after {before!r}"
    return f"cannot parse SQL{where}: {description}" + (f" (near {near!r})" if near else "")


def parse_query(sql: str, dialect: str = DIALECT) -> ParsedSql:
    """Parse one model query written in `dialect`; raise SqlError on anything else. Cached: a plan
    parses each model several times; callers copy the tree before they change it."""
    return _parse_query(sql, dialect)  # one cache key whether `dialect` is given or not


@functools.lru_cache(maxsize=4096)
def _parse_query(sql: str, dialect: str) -> ParsedSql:
    if not isinstance(sql, str) or not sql.strip():
        raise SqlError("SQL is empty")
    try:
        statements = [s for s in sqlglot.parse(sql, dialect=dialect) if s is not None]
    except RecursionError:
        raise SqlError("SQL is nested too deeply to parse") from None
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        raise SqlError(_parse_error_message(sql, first), sql_line=first.get("line")) from None
    if len(statements) != 1:
        raise SqlError(f"a model holds exactly one query; found {len(statements)} statements")
    tree = statements[0]
    if not isinstance(tree, (exp.Query, exp.Values)):
        raise SqlError(f"a model must be a query (SELECT ...); found {tree.key.upper()}")
    refs: set[str] = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            if isinstance(table.this, _ALLOWED_TABLE_FUNCTIONS):
                continue
            raise SqlError(
                f"table function {table.this.sql(dialect=DIALECT)[:60]!r} is not allowed: "
                "declare files and external tables as sources"
            )
        if table.args.get("catalog") or table.args.get("db"):
            raise SqlError(
                f"qualified name {table.sql(dialect=DIALECT)!r}: models read other nodes by their "
                "plain name; declare external tables as sources"
            )
        if not _is_cte_reference(table):
            refs.add(table.name.lower())
    for func in tree.find_all(exp.Func):
        name = (func.sql_name() if not isinstance(func, exp.Anonymous) else func.name).lower()
        if name in _FORBIDDEN_FUNCTIONS or isinstance(func, (exp.ReadCSV,)):
            raise SqlError(f"function {name}() is not allowed in a model: declare files as sources")
    if dialect == DIALECT:
        _refuse_multi_argument_count(tree)
    return ParsedSql(tree=tree, references=frozenset(refs))


def _refuse_multi_argument_count(tree: exp.Expr) -> None:
    """DuckDB rejects `count(DISTINCT a, b)` (count takes one argument), and so does dbt-duckdb.
    sqlglot would write it out as a count of the tuples with no NULL in them: a query that runs
    here but fails in DuckDB itself, with semantics nobody wrote."""
    for count in tree.find_all(exp.Count):
        distinct = count.this
        if isinstance(distinct, exp.Distinct) and len(distinct.expressions) > 1:
            args = ", ".join(e.sql(dialect=DIALECT) for e in distinct.expressions)
            raise SqlError(
                f"count(DISTINCT {args}): DuckDB's count takes one argument, so DuckDB (and "
                f"dbt-duckdb) reject this; count distinct tuples with count(DISTINCT ({args}))",
                sql_line=count.meta.get("line"),
            )


def rewrite(parsed: ParsedSql, tables: dict[str, str], dialect: str = DIALECT) -> str:
    """SQL text in `dialect` with each referenced node (lower-case name -> quoted physical name, or
    `(query)` in the canonical dialect for an inlined model) swapped in."""

    def swap(node: exp.Expr) -> exp.Expr:
        if (
            isinstance(node, exp.Table)
            and isinstance(node.this, exp.Identifier)
            and not node.args.get("db")
            and node.name.lower() in tables
            and not _is_cte_reference(node)
        ):
            target = tables[node.name.lower()]
            alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name, quoted=True))
            if target.startswith("("):
                replacement: exp.Expr = exp.Subquery(this=_parsed(target[1:-1]).copy(), alias=alias)
            else:
                replacement = _parsed(target, exp.Table).copy()
                replacement.set("alias", alias)
            # what the reference carries besides its name stays: PIVOT, UNPIVOT, TABLESAMPLE, ...
            for key, value in node.args.items():
                if value and key not in ("this", "db", "catalog", "alias"):
                    if key not in replacement.arg_types:
                        raise SqlError(
                            f"{node.sql(DIALECT)}: {key} cannot apply to an ephemeral model (inlined as a "
                            "subquery); make it a view or a table"
                        )
                    replacement.set(key, value)
            return replacement
        return node

    tree = parsed.tree.transform(swap)  # a copy: the cached tree stays as parsed
    if dialect != DIALECT:
        tree = tree.transform(_group_by_all_as_ordinals, copy=False)
    return tree.sql(dialect=dialect, copy=False)  # the tree is this call's own


@functools.lru_cache(maxsize=4096)
def _parsed(text: str, into: type[exp.Expr] | None = None) -> exp.Expr:
    """A physical name or inlined query, parsed once (a build is read by many models); copy it."""
    return sqlglot.parse_one(text, into=into, dialect=DIALECT)


def _group_by_all_as_ordinals(node: exp.Expr) -> exp.Expr:
    """GROUP BY ALL (DuckDB) -> GROUP BY the positions of the select items that aggregate nothing."""
    if isinstance(node, exp.Group) and node.args.get("all") and isinstance(node.parent, exp.Select):
        keys = [
            exp.Literal.number(i)
            for i, item in enumerate(node.parent.expressions, 1)
            if not item.find(exp.AggFunc, exp.Window)
        ]
        return exp.Group(expressions=keys) if keys else exp.Group(expressions=[])
    return node


# What sqlglot passes through to PostgreSQL unchanged although PostgreSQL rejects it.
_NOT_IN_POSTGRES: list[tuple[type[exp.Expr], str, Callable[[exp.Expr], bool]]] = [
    (
        exp.Star,
        "SELECT * EXCLUDE / REPLACE",
        lambda n: bool(n.args.get("except_") or n.args.get("replace") or n.args.get("rename")),
    ),
    (exp.Union, "UNION BY NAME", lambda n: bool(n.args.get("by_name"))),
    (exp.Struct, "struct literals ({...})", lambda n: True),
    (exp.Pivot, "PIVOT / UNPIVOT", lambda n: True),
    (exp.Lambda, "lambda functions (x -> ...)", lambda n: True),
    (exp.AnyValue, "any_value() (PostgreSQL 16+; use min() or max())", lambda n: True),
]


_INTEGER_TYPES = {
    exp.DType.TINYINT,
    exp.DType.SMALLINT,
    exp.DType.INT,
    exp.DType.BIGINT,
    exp.DType.INT128,
    exp.DType.UINT128,
    exp.DType.UTINYINT,
    exp.DType.USMALLINT,
    exp.DType.UINT,
    exp.DType.UBIGINT,
}
_FRACTIONAL_TYPES = {exp.DType.DOUBLE, exp.DType.FLOAT, exp.DType.DECIMAL}


def _fractional(node: exp.Expr) -> bool:
    """Whether `node` is plainly a fractional number (a literal, a division, an average, a cast to
    a fractional type); a column's type is not known before it runs."""
    if isinstance(node, exp.Paren):
        return _fractional(node.this)
    if isinstance(node, exp.Literal):
        return not node.is_string and not node.this.lstrip("-").isdigit()
    if isinstance(node, exp.Cast):
        return node.to.this in _FRACTIONAL_TYPES
    return isinstance(node, exp.Div | exp.Avg | exp.Sqrt | exp.Ln | exp.Log | exp.Exp | exp.Pow)


_RESULTS_DIFFER = "Spark gives other results than DuckDB here"
# What sqlglot writes for Spark but Spark rejects, or runs with other results (measured on Spark 4.3).
_NOT_IN_SPARK: list[tuple[type[exp.Expr], str, Callable[[exp.Expr], bool]]] = [
    (exp.Star, "SELECT * REPLACE / RENAME", lambda n: bool(n.args.get("replace") or n.args.get("rename"))),
    (exp.Columns, "COLUMNS(...)", lambda n: True),
    (exp.Union, "UNION BY NAME", lambda n: bool(n.args.get("by_name"))),
    (
        exp.Length,
        "len() of a list (Spark's length() is a string's; use array_length())",
        lambda n: isinstance(n.this, exp.Array | exp.ArrayAgg | exp.Split),
    ),
    (
        exp.Select,
        f"QUALIFY with LIMIT ({_RESULTS_DIFFER}: the LIMIT would apply before the QUALIFY filter); "
        "filter in a subquery, then LIMIT",
        lambda n: bool(n.args.get("qualify") and n.args.get("limit")),
    ),
    (
        exp.ArrayAgg,
        f"list() / array_agg() with ORDER BY ({_RESULTS_DIFFER}: collect_list keeps no order); "
        "sort the list with list_sort()",
        lambda n: isinstance(n.this, exp.Order),
    ),
    (
        exp.Cast,
        f"a cast of a fractional value to an integer type ({_RESULTS_DIFFER}: DuckDB rounds, Spark "
        "truncates, 3.7 -> 4 or 3); cast round(x) or trunc(x)",
        lambda n: isinstance(n, exp.Cast) and n.to.this in _INTEGER_TYPES and _fractional(n.this),
    ),
]


# dialect -> (its name in messages, the constructs it cannot run after transpiling from DIALECT)
_NOT_IN_TARGET = {"postgres": ("PostgreSQL", _NOT_IN_POSTGRES), "spark": ("Spark", _NOT_IN_SPARK)}


def target_problems(parsed: ParsedSql, dialect: str) -> list[str]:
    """Why `parsed` cannot run on `dialect` after transpiling (empty: it can)."""
    if dialect not in _NOT_IN_TARGET:
        return []
    engine, rules = _NOT_IN_TARGET[dialect]
    found = []
    for kind, what, bad in rules:
        if any(bad(n) for n in parsed.tree.find_all(kind)):
            # a construct that runs with other results says so itself; the others do not run
            found.append(
                what
                if _RESULTS_DIFFER in what
                else f"{what}: {engine} does not run this; write it out in plain SQL"
            )
    return found


def added_columns(before: ParsedSql, after: ParsedSql) -> tuple[str, ...]:
    """The output columns `after` adds to `before` when that is its only change: the same query
    with more select items, none of which can change the rows (no DISTINCT, no set-returning
    function, no new grouping key under GROUP BY ALL). Empty when the change is anything else."""
    old, new = before.tree, after.tree
    if not isinstance(old, exp.Select) or not isinstance(new, exp.Select) or new.args.get("distinct"):
        return ()
    old_items = [e.sql(dialect=DIALECT, comments=False) for e in old.expressions]
    new_items = [e.sql(dialect=DIALECT, comments=False) for e in new.expressions]
    if len(new_items) <= len(old_items) or any(e.is_star for e in new.expressions):
        return ()
    extra = [e for e, text in zip(new.expressions, new_items, strict=True) if text not in old_items]
    if [t for t in new_items if t in old_items] != old_items or len(extra) != len(new_items) - len(old_items):
        return ()
    grouped_by_all = isinstance(new.args.get("group"), exp.Group) and new.args["group"].args.get("all")
    for e in extra:
        if e.find(exp.Unnest, exp.Explode, exp.GenerateSeries, exp.ExplodingGenerateSeries):
            return ()
        if grouped_by_all and not e.find(exp.AggFunc, exp.Window):
            return ()
    trimmed = new.copy()
    trimmed.set(
        "expressions", [e.copy() for e, t in zip(new.expressions, new_items, strict=True) if t in old_items]
    )
    if trimmed.sql(dialect=DIALECT, comments=False) != old.sql(dialect=DIALECT, comments=False):
        return ()
    return tuple(e.alias_or_name for e in extra)


def reads_columns(parsed: ParsedSql, names: set[str]) -> bool:
    """Whether a query may read any of the columns `names` (lower-case) of what it selects from:
    it names one of them anywhere, or selects `*` (column lineage, conservatively)."""
    for star in parsed.tree.find_all(exp.Star):
        select = star.parent
        if isinstance(select, exp.Column):  # t.*
            select = select.parent
        # `count(*)` reads no column; neither does `exists (select * ...)`
        if isinstance(select, exp.Select) and not isinstance(select.parent, exp.Exists):
            return True
    return any(c.name.lower() in names for c in parsed.tree.find_all(exp.Column))


def column_list(names: list[str]) -> str:
    return ", ".join(quote(n) for n in names)


def canonical_type(name: str) -> str | None:
    """The canonical DuckDB rendering of a column type (bigint, decimal(12,2), varchar[],
    struct(...)), or None if `name` is not exactly one type. Only this rendering is ever put into
    SQL, so a type cannot smuggle in statements (`int; drop table x`)."""
    if (
        not isinstance(name, str)
        or not name.strip()
        or any(c in name for c in ";'\"")
        or "--" in name
        or "/*" in name
    ):
        return None
    try:
        statements = sqlglot.parse(f"select cast(null as {name})", dialect=DIALECT)
    except (ParseError, RecursionError):
        return None
    if len(statements) != 1 or not isinstance(statements[0], exp.Select):
        return None
    casts = list(statements[0].find_all(exp.Cast))
    if len(casts) != 1 or casts[0].to.this == exp.DataType.Type.USERDEFINED:
        return None
    return casts[0].to.sql(dialect=DIALECT)


def type_sql(canonical: str, dialect: str) -> str:
    """A canonical (DuckDB-rendered) column type as `dialect` writes it."""
    if dialect == DIALECT:
        return canonical
    return exp.DataType.build(canonical, dialect=DIALECT).sql(dialect=dialect)


def parse_expression(text: str) -> ParsedSql:
    """A boolean row expression for an `expression` check. It may read other models through
    subqueries (`amount <= (select max(cap) from limits)`), under the same rules as a model query:
    plain model names only, no files, no table functions. Raises ValueError with the reason."""
    try:
        statements = sqlglot.parse(f"select 1 where {text}", dialect=DIALECT)
    except (ParseError, RecursionError) as exc:
        raise ValueError(f"cannot parse expression {text!r}: {str(exc).splitlines()[0]}") from None
    if (
        len(statements) != 1
        or not isinstance(statements[0], exp.Select)
        or statements[0].args.get("where") is None
    ):
        raise ValueError(f"expression {text!r} must be one boolean SQL expression")
    tree = statements[0].args["where"].this.copy()  # detached: its own subqueries are the outermost
    refs: set[str] = set()
    try:
        for select in tree.find_all(exp.Select):
            if select.find_ancestor(exp.Select) is None:
                refs |= parse_query(select.sql(dialect=DIALECT)).references
    except SqlError as exc:
        raise ValueError(f"expression {text!r}: {exc}") from None
    if any(True for t in tree.find_all(exp.Table) if t.find_ancestor(exp.Select) is None) or any(
        (f.name if isinstance(f, exp.Anonymous) else f.sql_name()).lower() in _FORBIDDEN_FUNCTIONS
        for f in tree.find_all(exp.Func)
    ):
        raise ValueError(f"expression {text!r} may read tables only through subqueries, and no files")
    return ParsedSql(tree=tree, references=frozenset(refs))
