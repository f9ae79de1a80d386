"""The gitops-data YAML front-end: the entries of the project's YAML files, each made into a Node."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import fnmatch
from typing import Any

from gitops_data.errors import SqlError
from gitops_data.naming import identifier_problem
from gitops_data.project.checks import declared_checks
from gitops_data.project.collector import Collector, data_file, read_yaml_mapping
from gitops_data.project.nodes import Node
from gitops_data.project.schema import (
    SECTIONS,
    SETTINGS_FILE,
    FileDefaults,
    ModelSpec,
    SeedSpec,
    Settings,
    SnapshotSpec,
    SourceSpec,
)
from gitops_data.project.tree import UnsafePath
from gitops_data.project.yaml_lines import LineDict, YamlSyntaxError, line_of, parse_yaml
from gitops_data.sql import DIALECT, canonical_type, parse_query, target_problems


def _listed_yaml(path: str, patterns: list[str]) -> bool:
    """`path` is one of `patterns`: a file, a folder holding it, or a glob."""
    for pattern in patterns:
        pattern = pattern.strip().removeprefix("./").rstrip("/")
        if pattern in ("", ".") or path == pattern or path.startswith(pattern + "/"):
            return True
        if fnmatch.fnmatch(path, pattern):
            return True
    return False


def yaml_entries(
    c: Collector, settings: Settings, dbt_repo: bool = False
) -> tuple[list[tuple[str, str, LineDict]], dict[str, FileDefaults]]:
    """(section, file, raw entry) for every entry of every project YAML file; each file's defaults.
    In a dbt project with no `yaml:` setting, a YAML file with no gitops-data section belongs to
    another tool (docker-compose, a Taskfile, CI) and is not read."""
    out: list[tuple[str, str, LineDict]] = []
    defaults: dict[str, FileDefaults] = {}
    for path in c.tree.files():
        if path == SETTINGS_FILE or not path.endswith((".yml", ".yaml")):
            continue
        if any(fnmatch.fnmatch(path, pat) for pat in settings.exclude):
            continue
        if settings.yaml is not None and not _listed_yaml(path, settings.yaml):
            continue
        if dbt_repo and settings.yaml is None:
            try:
                raw = parse_yaml(c.tree.read(path))
            except (YamlSyntaxError, UnsafePath, OSError):
                continue  # another tool's file: not ours to judge
            if not isinstance(raw, dict) or not (set(raw) & {*SECTIONS, "defaults"}):
                continue
        data = read_yaml_mapping(c, path, "top level must be a mapping with keys " + ", ".join(SECTIONS))
        if data is None:
            continue
        for key, value in data.items():
            if key == "defaults":
                parsed = c.parse(FileDefaults, value if value is not None else {}, path)
                if parsed is not None:
                    defaults[path] = parsed
                continue
            if key not in SECTIONS:
                hint = difflib.get_close_matches(key, list(SECTIONS), n=1)
                extra = (
                    f"; did you mean {hint[0]!r}?"
                    if hint
                    else f" (expected {', '.join(SECTIONS)}; "
                    f"or list the file under `exclude` in {SETTINGS_FILE})"
                )
                c.add(path, f"unknown top-level key {key!r}{extra}", data.key_lines.get(key))
                continue
            if value is None:
                continue
            if not isinstance(value, list):
                c.add(path, f"`{key}` must be a list", data.key_lines.get(key))
                continue
            for entry in value:
                if not isinstance(entry, LineDict):  # every parsed mapping is one
                    c.add(path, f"each entry of `{key}` must be a mapping", getattr(value, "line", None))
                    continue
                out.append((key, path, entry))
    return out, defaults


def _python_entry(c: Collector, spec: ModelSpec, file: str, line: int | None) -> dict | None:
    entry = spec.python or ""
    if entry.count(":") != 1:
        c.add(file, f"python: {entry!r} must look like 'path/to/file.py:function'", line, spec.name)
        return None
    path, func = entry.split(":")
    got = c.read_text(path, file, line, spec.name, "python")
    if got is None:
        return None
    norm, source = got
    try:
        module = ast.parse(source, filename=norm)
    except SyntaxError as exc:
        c.add(norm, f"Python syntax error: {exc.msg}", exc.lineno, spec.name)
        return None
    defs = {n.name: n for n in module.body if isinstance(n, ast.FunctionDef)}
    if func not in defs:
        hint = difflib.get_close_matches(func, list(defs), n=1)
        c.add(
            file,
            f"python: {norm} has no top-level function {func!r}"
            + (f"; did you mean {hint[0]!r}?" if hint else ""),
            line,
            spec.name,
        )
        return None
    args = defs[func].args
    if args.vararg or args.kwarg:
        c.add(
            norm,
            f"{func}() may not take *args/**kwargs: its parameters name its inputs",
            defs[func].lineno,
            spec.name,
        )
    params = tuple(a.arg for a in args.posonlyargs + args.args + args.kwonlyargs)
    return {"python_file": norm, "python_function": func, "python_source": source, "deps": params}


def yaml_node(c: Collector, section: str, file: str, raw: LineDict, dialects: tuple[str, str]) -> Node | None:
    name = raw.get("name") if isinstance(raw.get("name"), str) else None
    spec = c.parse(SECTIONS[section], raw, file, name)
    if spec is None:
        return None
    line = raw.line
    common: dict[str, Any] = dict(
        name=spec.name,
        file=file,
        line=line,
        description=spec.description,
        tags=tuple(spec.tags),
        owner=spec.owner,
        columns=dict(spec.columns),
        checks=tuple(spec.checks),
        key_lines=_key_lines(raw),
    )
    for col, col_spec in spec.columns.items():
        if not col or not col.strip() or any(ord(ch) < 32 for ch in col):
            c.add(
                file,
                f"columns: column name {col!r} is empty or has control characters",
                line_of(raw, ("columns",)),
                spec.name,
            )
        if col_spec.type:
            canonical = canonical_type(col_spec.type)
            if canonical is None:
                c.add(
                    file,
                    f"columns.{col}.type: {col_spec.type!r} is not a DuckDB type",
                    line_of(raw, ("columns", col)),
                    spec.name,
                )
                return None
            common["columns"][col] = col_spec.model_copy(update={"type": canonical})
    if isinstance(spec, SourceSpec):
        if spec.table is not None:
            parts = spec.table.split(".")
            if not 1 <= len(parts) <= 3 or any(identifier_problem(p) for p in parts):
                c.add(
                    file,
                    f"table: {spec.table!r} must be [catalog.][schema.]table of plain identifiers",
                    line_of(raw, ("table",)),
                    spec.name,
                )
                return None
            node = Node(kind="table", table=spec.table, **common)
            if declared_checks(node):
                c.add(
                    file,
                    "checks on an external table do not run (it has no build to audit before publishing); "
                    "declare them on a model that selects from it",
                    raw.line,
                    spec.name,
                )
                return None
            return node
        assert spec.path is not None  # the validator: exactly one of path and table
        data = data_file(c, spec.path, file, line_of(raw, ("path",)), spec.name, spec.format)
        return Node(kind="source", **common, **data) if data else None
    if isinstance(spec, SeedSpec):
        data = data_file(c, spec.path, file, line_of(raw, ("path",)), spec.name, "csv")
        return Node(kind="seed", **common, **data) if data else None
    if isinstance(spec, SnapshotSpec):
        return Node(kind="snapshot", snapshot=spec, deps=(spec.source,), **common)
    assert isinstance(spec, ModelSpec)
    if spec.python is not None:
        py = _python_entry(c, spec, file, line_of(raw, ("python",)))
        return Node(kind="python", **common, **py) if py else None
    if spec.sql_file is not None:
        got = c.read_text(spec.sql_file, file, line_of(raw, ("sql_file",)), spec.name, "sql_file")
        if got is None:
            return None
        sql_where, sql = got
    else:
        assert spec.sql is not None  # the validator: exactly one of sql, sql_file and python
        sql_where, sql = file, spec.sql
    written, target = dialects
    key_line = line_of(raw, ("sql",)) if sql_where == file else 0
    try:
        parsed = parse_query(sql, written)
    except SqlError as exc:
        c.add(sql_where, str(exc), _sql_error_line(exc, key_line, sql), spec.name)
        return None
    problems = target_problems(parsed, target)
    for problem in problems:
        c.add(sql_where, f"{problem} (the warehouse is {target})", key_line or None, spec.name)
    if problems:
        return None
    if written != DIALECT:  # kept in the canonical dialect: plans transpile it to the warehouse's
        sql = parsed.tree.sql(dialect=DIALECT)
    block = "\n" in sql.strip("\n") or sql.endswith("\n")  # `sql: |`: the SQL starts on the next line
    first = 1 if key_line == 0 else (key_line or raw.line or 1) + (1 if block else 0)
    return Node(
        kind="sql",
        sql=sql,
        deps=tuple(sorted(parsed.references)),
        incremental=spec.incremental,
        sql_at=(sql_where, first) if written == DIALECT else None,
        **common,
    )


def _key_lines(raw: LineDict) -> dict[str, int]:
    """The lines of a node's `columns.<col>` and `checks.<i>` entries (column findings point there)."""
    out: dict[str, int] = {}
    columns = raw.get("columns")
    for col in columns if isinstance(columns, dict) else ():
        out[f"columns.{col}"] = line_of(raw, ("columns", col)) or raw.line
    checks = raw.get("checks")
    for i in range(len(checks) if isinstance(checks, list) else 0):
        out[f"checks.{i}"] = line_of(raw, ("checks", i)) or raw.line
    return out


def materialize(
    c: Collector, node: Node, raw: LineDict, defaults: FileDefaults | None, settings: Settings
) -> Node:
    """A SQL model's materialization: its own `materialized`, else its file's `defaults`, else the
    first of its tags in `materialized_by_tag`, else table. An ephemeral model has no object to check."""
    kind = raw.get("materialized") or (defaults.materialized if defaults else None)
    if kind is None:
        by_tag = settings.materialized_by_tag
        kind = next((by_tag[t] for t in node.tags if t in by_tag), None)
    kind = kind or "table"
    if kind == "ephemeral" and declared_checks(dataclasses.replace(node, materialized=kind)):
        c.add(
            node.file,
            "an ephemeral model is inlined into its downstream models and has no table to check; "
            "make it a view to keep its checks",
            raw.key_lines.get("materialized", node.line),
            node.name,
        )
    return dataclasses.replace(node, materialized=kind)


def _sql_error_line(exc: SqlError, key_line: int | None, sql: str) -> int | None:
    """The line of the file an SQL error is on: in an .sql file its own line; in YAML the `sql:` key's
    line, plus the SQL line for a block scalar (`sql: |`, whose text starts on the next line)."""
    if exc.sql_line is None or key_line is None:
        return key_line or None
    if key_line == 0:  # a separate .sql file
        return exc.sql_line
    return key_line + exc.sql_line if "\n" in sql.strip("\n") or sql.endswith("\n") else key_line
