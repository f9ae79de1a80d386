"""dbt hooks (pre/post-hooks, on-run-start/end) for the warehouse they run on: written in the
project's dialect (DuckDB unless it says otherwise), transpiled with sqlglot to the engine's, or
refused with the reason when sqlglot cannot carry them over faithfully (pure)."""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from gitops_data.sql import ParsedSql, target_problems

# Statements sqlglot keeps as raw text (exp.Command) that both engines read the same way.
_PORTABLE_COMMANDS = {"REINDEX", "CLUSTER", "REFRESH", "LOCK"}
# Statements of one engine only (their text would be handed over unchanged and fail there).
_ENGINE_ONLY: dict[type[exp.Expr], str] = {exp.Pragma: "PRAGMA (DuckDB only)"}


# What sqlglot parses into a tree it can write in another dialect.
_TRANSLATABLE = tuple(
    getattr(exp, name)
    for name in (
        "Query",
        "DML",
        "DDL",
        "Alter",
        "Drop",
        "TruncateTable",
        "Merge",
        "Grant",
        "Revoke",
        "Comment",
        "Set",
        "Analyze",
    )
    if hasattr(exp, name)
)


class HookError(ValueError):
    """A hook that cannot be carried over to the engine's dialect; the message says why."""


def transpile_hook(sql: str, read: str, write: str) -> str:
    """`sql` (one or more statements in `read`'s dialect) in `write`'s; unchanged if they match."""
    if read == write or not sql.strip():
        return sql
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "falling back to parsing as a Command": handled below
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s is not None]
    except SqlglotError as exc:
        raise HookError(f"cannot read it as {read} SQL: {str(exc).splitlines()[0]}") from None
    finally:
        quiet.setLevel(level)
    out = [_statement(statement, read, write) for statement in statements]
    if out == [s.sql(dialect=read) for s in statements]:
        return sql  # the same text in both dialects: kept as written (and as fingerprinted)
    return ";\n".join(out)


def _statement(statement: exp.Expr, read: str, write: str) -> str:
    if isinstance(statement, exp.Command):
        keyword = str(statement.this).upper()
        if keyword == "VACUUM":
            raise HookError("VACUUM cannot run inside the build's transaction")
        if keyword not in _PORTABLE_COMMANDS:
            raise HookError(
                f"sqlglot cannot translate the {keyword} statement from {read} to {write}; write it for "
                f"{write} (e.g. under {{% if target.type == '{write}' %}})"
            )
        return statement.sql(dialect=write)
    for kind, what in _ENGINE_ONLY.items():
        if isinstance(statement, kind):
            raise HookError(f"{what} cannot run on {write}")
    if not isinstance(statement, _TRANSLATABLE):
        raise HookError(f"{statement.sql(dialect=read)[:60]!r} is not a statement sqlglot can translate")
    group_all = [g for g in statement.find_all(exp.Group) if g.args.get("all")]
    if group_all and write != read:
        raise HookError(f"GROUP BY ALL cannot run on {write}; name the grouping columns")
    problems = target_problems(ParsedSql(statement, frozenset()), write)
    if problems:
        raise HookError("; ".join(problems))
    try:
        return statement.sql(dialect=write, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise HookError(f"sqlglot cannot translate it to {write}: {str(exc).splitlines()[0]}") from None
