"""dbt Python models (`def model(dbt, session)` in a model folder), read without running them: the
models they read are the literal `dbt.ref(...)` / `dbt.source(...)` calls, their configs the literal
`dbt.config(...)` calls. They build like our Python models; `warehouse.python_models` calls them
with dbt-duckdb's contract (a `dbt` object and a DuckDB session)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

DBT_FUNCTION = "model"


class DbtPythonError(ValueError):
    """A dbt Python model that cannot be read; `line` is where."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass
class DbtPythonModel:
    refs: list[tuple[str, ...]] = field(default_factory=list)  # ref('x') -> ('x',); ('pkg', 'x')
    sources: list[tuple[str, str]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


def read_python_model(text: str) -> DbtPythonModel:
    """The refs, sources and config of a dbt Python model's source text."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise DbtPythonError(f"Python syntax error: {exc.msg}", exc.lineno) from None
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == DBT_FUNCTION), None)
    if fn is None or [a.arg for a in fn.args.args] != ["dbt", "session"]:
        raise DbtPythonError("a dbt Python model defines `def model(dbt, session)` at the top level", 1)
    out = DbtPythonModel()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Name) and owner.id == "dbt"):
            continue
        what = node.func.attr
        if what not in ("ref", "source", "config"):
            continue
        if what == "config":
            for kw in node.keywords:
                if kw.arg is None or not isinstance(kw.value, ast.Constant):
                    raise DbtPythonError("dbt.config() takes literal keyword arguments", node.lineno)
                out.config[kw.arg] = kw.value.value
            continue
        args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if len(args) != len(node.args) or node.keywords and what == "source":
            raise DbtPythonError(
                f"dbt.{what}() takes literal strings (its models are known before it runs)", node.lineno
            )
        if what == "ref" and len(args) in (1, 2):
            out.refs.append(tuple(args))
        elif what == "source" and len(args) == 2:
            out.sources.append((args[0], args[1]))
        else:
            raise DbtPythonError(f"dbt.{what}() with {len(args)} arguments", node.lineno)
    return out
