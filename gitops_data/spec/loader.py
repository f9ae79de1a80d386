"""Load and validate a project from a FileTree. Collects *every* issue before failing."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import fnmatch
import posixpath
from typing import Any

from pydantic import BaseModel, ValidationError

from gitops_data.errors import Issue, ProjectError, SqlError
from gitops_data.naming import identifier_problem
from gitops_data.spec.checks import check_reads, declared_checks
from gitops_data.spec.project import Node, Project
from gitops_data.spec.schema import (
    SECTIONS,
    SETTINGS_FILE,
    AlertSpec,
    FileDefaults,
    ModelSpec,
    ScheduleSpec,
    SeedSpec,
    Settings,
    SnapshotSpec,
    SourceSpec,
)
from gitops_data.spec.tree import FileTree, UnsafePath, normalize
from gitops_data.spec.yaml_lines import LineDict, YamlSyntaxError, line_of, parse_yaml
from gitops_data.sql import DIALECT, canonical_type, parse_query, target_problems

MAX_YAML_BYTES = 5_000_000
_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".json": "json",
    ".ndjson": "json",
    ".jsonl": "json",
}


def _pydantic_issues(
    exc: ValidationError, data: Any, file: str, model: str | None, prefix: tuple = ()
) -> list[Issue]:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after",))
        field = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
            field = ".".join(str(p) for p in loc[:-1])
        elif err["type"] == "missing":
            msg = f"missing required key {loc[-1]!r}"
            field = ".".join(str(p) for p in loc[:-1])
        where = f"{field}: " if field else ""
        out.append(Issue(file, where + msg, line_of(data, prefix + loc), model))
    return out


class _Collector:
    def __init__(self, tree: FileTree):
        self.tree = tree
        self.issues: list[Issue] = []

    def add(self, file: str, message: str, line: int | None = None, model: str | None = None) -> None:
        self.issues.append(Issue(file, message, line, model))

    def parse(self, cls: type[BaseModel], data: Any, file: str, model: str | None = None):
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            self.issues.extend(_pydantic_issues(exc, data, file, model))
            return None

    def read_text(
        self, path: str, file: str, line: int | None, model: str | None, what: str
    ) -> tuple[str, str] | None:
        try:
            norm = normalize(path)
            return norm, self.tree.read(norm).decode("utf-8")
        except UnsafePath as exc:
            self.add(file, f"{what}: {exc}", line, model)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            self.add(file, f"{what}: file {path!r} does not exist", line, model)
        except OSError as exc:
            self.add(file, f"{what}: cannot read {path!r}: {exc.strerror or exc}", line, model)
        except UnicodeDecodeError:
            self.add(file, f"{what}: file {path!r} is not UTF-8 text", line, model)
        return None


def _load_settings(c: _Collector) -> Settings:
    if not c.tree.exists(SETTINGS_FILE):
        if not c.tree.exists("dbt_project.yml"):  # a dbt project needs no settings file
            c.add(
                SETTINGS_FILE, f"not a gitops-data project: {SETTINGS_FILE} is missing at the repository root"
            )
        return Settings()
    try:
        data = parse_yaml(c.tree.read(SETTINGS_FILE))
    except YamlSyntaxError as exc:
        c.add(SETTINGS_FILE, str(exc), exc.line)
        return Settings()
    if data is None:
        return Settings()
    if not isinstance(data, dict):
        c.add(SETTINGS_FILE, "must be a mapping of settings", getattr(data, "line", None))
        return Settings()
    settings = c.parse(Settings, data, SETTINGS_FILE)
    if settings is None:
        return Settings()
    for key in ("internal_schema", "external_schema", "meta_schema"):
        problem = identifier_problem(getattr(settings, key))
        if problem:
            c.add(SETTINGS_FILE, f"{key} {getattr(settings, key)!r} {problem}", line_of(data, (key,)))
    for role in settings.consumers:
        problem = identifier_problem(role)
        if problem:
            c.add(SETTINGS_FILE, f"consumer role {role!r} {problem}", line_of(data, ("consumers",)))
    if len({settings.internal_schema, settings.external_schema, settings.meta_schema}) != 3:
        c.add(SETTINGS_FILE, "internal_schema, external_schema and meta_schema must all differ")
    return settings


def read_yaml_mapping(c: _Collector, path: str, not_a_mapping: str) -> LineDict | None:
    """The YAML file `path` as a mapping, or None (empty, or unreadable, too large, invalid or not a
    mapping: then an issue says why, with `not_a_mapping` for the last)."""
    try:
        raw = c.tree.read(path)
    except (UnsafePath, OSError) as exc:
        c.add(path, f"cannot read: {exc}")
        return None
    if len(raw) > MAX_YAML_BYTES:
        c.add(path, f"file is {len(raw)} bytes; YAML files are limited to {MAX_YAML_BYTES} bytes")
        return None
    try:
        data = parse_yaml(raw)
    except YamlSyntaxError as exc:
        c.add(path, str(exc), exc.line)
        return None
    if data is not None and not isinstance(data, LineDict):
        c.add(path, not_a_mapping, getattr(data, "line", 1))
        return None
    return data


def _yaml_entries(
    c: _Collector, settings: Settings
) -> tuple[list[tuple[str, str, LineDict]], dict[str, FileDefaults]]:
    """(section, file, raw entry) for every entry of every project YAML file; each file's defaults."""
    out: list[tuple[str, str, LineDict]] = []
    defaults: dict[str, FileDefaults] = {}
    for path in c.tree.files():
        if path == SETTINGS_FILE or not path.endswith((".yml", ".yaml")):
            continue
        if any(fnmatch.fnmatch(path, pat) for pat in settings.exclude):
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


def _python_entry(c: _Collector, spec: ModelSpec, file: str, line: int | None) -> dict | None:
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


def _data_file(
    c: _Collector, path: str, file: str, line: int | None, name: str, fmt: str | None
) -> dict | None:
    try:
        norm = normalize(path)
    except UnsafePath as exc:
        c.add(file, f"path: {exc}", line, name)
        return None
    if not c.tree.exists(norm):
        c.add(
            file, f"path: file {path!r} does not exist in the repository (or is a symbolic link)", line, name
        )
        return None
    fmt = fmt or _FORMATS.get(posixpath.splitext(norm)[1].lower())
    if fmt is None:
        c.add(file, f"path: cannot tell the format of {path!r}; set `format: csv|parquet|json`", line, name)
        return None
    return {"data_path": norm, "data_format": fmt, "content_digest": c.tree.digest(norm)}


def _node(c: _Collector, section: str, file: str, raw: LineDict, dialects: tuple[str, str]) -> Node | None:
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
        data = _data_file(c, spec.path, file, line_of(raw, ("path",)), spec.name, spec.format)
        return Node(kind="source", **common, **data) if data else None
    if isinstance(spec, SeedSpec):
        data = _data_file(c, spec.path, file, line_of(raw, ("path",)), spec.name, "csv")
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
    return Node(
        kind="sql", sql=sql, deps=tuple(sorted(parsed.references)), incremental=spec.incremental, **common
    )


def _materialize(
    c: _Collector, node: Node, raw: LineDict, defaults: FileDefaults | None, settings: Settings
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


def _order(c: _Collector, nodes: dict[str, Node], declared: set[str]) -> dict[str, Node]:
    """Nodes in dependency order; reports unknown references and cycles. References to names that
    are declared but failed validation (`declared`) are not reported again."""
    lower = {n.lower(): n for n in nodes}
    resolved: dict[str, Node] = {}
    for name, node in nodes.items():
        deps = []
        for dep in node.deps:
            target = lower.get(dep.lower())
            if target is None and dep.lower() in declared:
                continue
            if target is None:
                hint = difflib.get_close_matches(dep.lower(), list(lower), n=1)
                what = "input" if node.kind == "python" else "reference"
                c.add(
                    node.file,
                    f"unknown {what} {dep!r}" + (f"; did you mean {lower[hint[0]]!r}?" if hint else ""),
                    node.line,
                    name,
                )
            elif target == name:
                c.add(node.file, "model references itself", node.line, name)
            else:
                deps.append(target)
        resolved[name] = Node(**{**node.__dict__, "deps": tuple(dict.fromkeys(deps))})
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done
    reported: set[frozenset] = set()

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        stack.append(name)
        for dep in resolved[name].deps:
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    node = resolved[dep]
                    c.add(node.file, "dependency cycle: " + " -> ".join(cycle), node.line, dep)
            elif state.get(dep) is None:
                visit(dep, stack)
        stack.pop()
        state[name] = 2
        order.append(name)

    for name in sorted(resolved):
        if name not in state:
            visit(name, [])
    return {name: resolved[name] for name in order}


def read_settings(tree: FileTree) -> Settings:
    """Only the settings (defaults where they cannot be read): enough to name an invalid project's env."""
    return _load_settings(_Collector(tree))


def load_project(tree: FileTree, target: str = DIALECT) -> Project:
    """Load and validate the project in `tree` for a warehouse speaking `target` (a sqlglot
    dialect); raise ProjectError listing every issue."""
    c = _Collector(tree)
    settings = _load_settings(c)
    nodes: dict[str, Node] = {}
    seen: dict[str, tuple[str, int | None]] = {}
    schedules: list[ScheduleSpec] = []
    alerts: list[AlertSpec] = []
    where: dict[str, tuple[str, int]] = {}
    dbt = None
    if settings.dbt_project is not None or tree.exists("dbt_project.yml"):
        from gitops_data.spec.dbt import DbtLoader

        dbt = DbtLoader.open(c, settings, target)  # its files are dbt's, not gitops-data YAML
        settings = dbt.settings
    entries, file_defaults = _yaml_entries(c, dbt.yaml_settings if dbt else settings)
    for section, file, raw in entries:
        name = raw.get("name")
        if section in ("schedules", "alerts"):
            spec = c.parse(SECTIONS[section], raw, file, name if isinstance(name, str) else None)
            if spec is not None:
                where[spec.name] = (file, raw.line)
                (schedules if section == "schedules" else alerts).append(spec)
            continue
        if isinstance(name, str):
            problem = identifier_problem(name)
            if problem:
                c.add(file, f"name {name!r} {problem}", raw.key_lines.get("name", raw.line), name)
                continue
            if name.lower() in seen:
                other_file, other_line = seen[name.lower()]
                c.add(
                    file,
                    f"duplicate name {name!r}: also declared at {other_file}:{other_line}",
                    raw.line,
                    name,
                )
                continue
            seen[name.lower()] = (file, raw.line)
        node = _node(c, section, file, raw, (settings.dialect, target))
        if node is not None and node.kind == "sql" and node.incremental is None:
            node = _materialize(c, node, raw, file_defaults.get(file), settings)
        if node is not None:
            nodes[node.name] = node
    if dbt is not None:
        nodes.update(dbt.load(seen, set(nodes)))
    ordered = _order(c, nodes, set(seen))
    lower = {n.lower() for n in ordered}
    ephemeral = {n.lower() for n, nd in ordered.items() if nd.ephemeral}
    for node in ordered.values():
        for check in node.checks:
            for target in check_reads(check.kind, check.args):
                if target.lower() not in lower:
                    c.add(
                        node.file,
                        f"checks: {check.kind} reads unknown model {target!r}",
                        node.line,
                        node.name,
                    )
                elif target.lower() in ephemeral:
                    c.add(
                        node.file,
                        f"checks: {check.kind} reads ephemeral model {target!r}, which has no table; "
                        "make it a view",
                        node.line,
                        node.name,
                    )
        inlined = [d for d in node.deps if d.lower() in ephemeral]
        if node.kind == "python" and inlined:
            c.add(
                node.file,
                f"a Python model reads tables; {', '.join(inlined)} is ephemeral (make it a view)",
                node.line,
                node.name,
            )
    for sched in schedules:
        for sel in sched.select:
            if not sel.startswith("tag:") and sel not in ordered:
                file, line = where[sched.name]
                c.add(file, f"schedule {sched.name!r} selects unknown model {sel!r}", line)
    if c.issues:
        raise ProjectError(c.issues, where=f"project at {tree.label}")
    return Project(
        settings=settings, nodes=ordered, schedules=tuple(schedules), alerts=tuple(alerts), commit=tree.commit
    )
