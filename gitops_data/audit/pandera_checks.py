"""Pure: declared column checks -> pandera (Polars backend) schemas."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from gitops_data.project.checks import DeclaredCheck

# Column checks that pandera runs on a Polars frame of that one column.
PANDERA_KINDS = {
    "not_null",
    "unique",
    "ge",
    "gt",
    "le",
    "lt",
    "between",
    "isin",
    "notin",
    "str_matches",
    "str_length",
}


def _value_check(chk: DeclaredCheck) -> pa.Check | None:
    a = chk.args
    match chk.kind:
        case "ge":
            return pa.Check.ge(a)
        case "gt":
            return pa.Check.gt(a)
        case "le":
            return pa.Check.le(a)
        case "lt":
            return pa.Check.lt(a)
        case "between":
            if a["min"] is not None and a["max"] is not None:
                return pa.Check.in_range(a["min"], a["max"])
            return pa.Check.ge(a["min"]) if a["min"] is not None else pa.Check.le(a["max"])
        case "isin":
            return pa.Check.isin(a)
        case "notin":
            return pa.Check.notin(a)
        case "str_matches":
            return pa.Check.str_matches(a)
        case "str_length":
            return pa.Check.str_length(a["min"], a["max"])
    return None


def column_schema(chk: DeclaredCheck) -> pa.DataFrameSchema:
    """A one-column pandera schema that fails exactly when `chk` fails."""
    assert chk.column is not None and chk.kind in PANDERA_KINDS
    value = _value_check(chk)
    column = pa.Column(
        None,
        checks=[value] if value is not None else [],
        nullable=chk.kind != "not_null",
        unique=chk.kind == "unique",
    )
    return pa.DataFrameSchema({chk.column: column}, name=chk.name)


def polars_expression_schema(chk: DeclaredCheck) -> pa.DataFrameSchema:
    """Model-level `expression: {polars: ...}`: every row must make the expression true."""
    source = chk.args["polars"]
    expr = eval(source, {"pl": pl, "__builtins__": {}})  # noqa: S307 - project code, same trust as Python models
    if not isinstance(expr, pl.Expr):
        raise ValueError(f"expression {source!r} is not a Polars expression")
    check = pa.Check(lambda data: data.lazyframe.select(expr.fill_null(True)), name=chk.name)
    return pa.DataFrameSchema(checks=[check], name=chk.name)
