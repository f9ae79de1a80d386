"""Pure: which column a dbt incremental model's `is_incremental()` filter watches."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError


def _subquery(node: exp.Expr) -> exp.Select | None:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select):
        return node.this
    return None


def watched_columns(sql: str, this: str, dialect: str) -> set[str]:
    """The columns `c` of every filter `x > (select max(c) from <this>)` (or `>=`, or the mirrored
    `<`), as the model's SQL reads when `is_incremental()` is true: `c` is the model's own output
    column whose maximum marks what was loaded before."""
    try:
        tree = sqlglot.parse_one(sql, dialect=dialect)
    except SqlglotError:
        return set()
    found: set[str] = set()
    for cmp in tree.find_all(exp.GT, exp.GTE, exp.LT, exp.LTE):
        bound = cmp.expression if isinstance(cmp, (exp.GT, exp.GTE)) else cmp.this
        select = _subquery(bound)
        if select is None:
            continue
        tables = [t.name.lower() for t in select.find_all(exp.Table)]
        maxima = list(select.find_all(exp.Max))
        if tables == [this.lower()] and len(maxima) == 1 and isinstance(maxima[0].this, exp.Column):
            found.add(maxima[0].this.name)
    return found
