"""Pure: the list of checks a node declares, each with a stable name, a definition hash and the other
models it reads (a relationship's target, the models an SQL expression's subqueries select from).

Besides the YAML kinds, `returns_no_rows` ({sql, test}) is a query that fails when it returns rows:
what dbt tests become (a singular test, a generic test other than dbt's four); loaders build it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from gitops_data.project.nodes import Node


def check_hash(definition: Any) -> str:
    """Hash of one check's definition; an audit counts only for the definition it ran."""
    return hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DeclaredCheck:
    """One check of one node: one Dagster asset check, one row per build in the audit catalog."""

    name: str
    kind: str
    column: str | None
    args: Any
    severity: str
    description: str
    reads: tuple[str, ...] = ()  # other models whose builds of the same commit the check reads

    @property
    def blocking(self) -> bool:
        return self.severity == "error"

    @property
    def hash(self) -> str:
        # Severity is not part of it: it changes what a result means, not what the check computes.
        return check_hash({"kind": self.kind, "column": self.column, "args": self.args})


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "col"


def _describe(kind: str, column: str | None, args: Any) -> str:
    if kind == "returns_no_rows":
        return f"returns no rows: {args.get('test', 'query')}"
    subject = f"{column}: " if column else ""
    return f"{subject}{kind}" if args is None or args is True else f"{subject}{kind} {args}"


def check_reads(kind: str, args: Any) -> tuple[str, ...]:
    """The models a model-level check reads besides the model it checks (names as written)."""
    if kind == "relationship":
        return (args["to"],)
    if kind == "expression" and "sql" in args:
        from gitops_data.sql import parse_expression

        return tuple(sorted(parse_expression(args["sql"]).references))
    if kind == "returns_no_rows":  # a query of failing rows (a dbt test): the models it reads
        from gitops_data.sql import parse_query

        return tuple(sorted(parse_query(args["sql"]).references))
    return ()


def declared_checks(node: Node) -> list[DeclaredCheck]:
    """Every check `node` declares, column checks first, in YAML order; names are unique."""
    raw: list[
        tuple[str | None, str, str | None, Any, str]
    ] = []  # (explicit name, kind, column, args, severity)
    for col, spec in node.columns.items():
        if spec.type:
            raw.append((None, "type", col, spec.type, spec.severity))
        if spec.nullable is False:
            raw.append((None, "not_null", col, None, spec.severity))
        if spec.unique:
            raw.append((None, "unique", col, None, spec.severity))
        for chk in spec.checks:
            raw.append((chk.name, chk.kind, col, chk.args, chk.severity))
    for model_chk in node.checks:
        kind = "unique_combination" if model_chk.kind == "unique" else model_chk.kind
        raw.append((model_chk.name, kind, None, model_chk.args, model_chk.severity))
    out: list[DeclaredCheck] = []
    used: set[str] = set()
    for explicit, kind, column, args, severity in raw:
        base = _slug(explicit) if explicit else (f"{_slug(column)}__{kind}" if column else kind)
        name, i = base, 2
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        reads = () if column else check_reads(kind, args)
        out.append(DeclaredCheck(name, kind, column, args, severity, _describe(kind, column, args), reads))
    return out
