"""Render dbt resources (models, snapshot blocks, tests) to SQL, with dbt's Jinja context on jinja2:
`ref`, `source`, `config`, `var`, `env_var`, `this`, `is_incremental()`, `target`, `adapter.dispatch`,
project macros, the macros of packages installed under dbt_packages/, and dbt's own (`dbt.*`).

`ref('x')` renders as the plain name `x`, `source('s', 't')` as `s__t`, `this` as the model's own
name: our SQL layer resolves plain names to the builds a plan picks. Nothing asks a warehouse:
a relation's columns (`adapter.get_columns_in_relation`, used by `star`) come from the project.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2

from gitops_data.project.dbt.builtins import GLOBAL_FILES, INTERNAL_PACKAGE
from gitops_data.project.dbt.constants import constant_query, reads_tables
from gitops_data.project.dbt.depends import static_calls
from gitops_data.project.dbt.housekeeping import INVOCATION_ID, RunStartedAt
from gitops_data.project.dbt.jinja import (
    DBT_VERSION,
    MODULES,
    Column,
    ConfigCall,
    DbtRenderError,
    Exceptions,
    InferredColumn,
    MacroReturn,
    Namespace,
    Relation,
    ResultTable,
    describe,
    fromjson,
    fromyaml,
    local_md5,
    macro_return,
    make_environment,
    set_strict,
    template_frames,
    tojson,
    toyaml,
    try_set,
    try_zip,
)
from gitops_data.project.dbt.late import BuildRunner, LateRenderError, NeedsWarehouse, late_key, register
from gitops_data.project.dbt.project import DbtPackage, merge_config
from gitops_data.project.dbt.template_cache import compile_expression

_MISSING = object()
_MACRO_DEF = re.compile(r"\{%-?\s*(macro|test)\s+([A-Za-z_]\w*)\s*\(")
_FLAGS = {"WHICH": "run", "FULL_REFRESH": False, "STORE_FAILURES": False, "WARN_ERROR": False}


@dataclass(frozen=True)
class RefTarget:
    """A node `ref()` or `source()` may name."""

    name: str
    kind: str  # model | seed | snapshot | source | node (declared in gitops-data YAML)
    materialized: str = "table"


@dataclass
class Resource:
    """A dbt resource rendered from a file: a model, a snapshot block or a singular test."""

    name: str
    kind: str  # model | snapshot | test
    file: str
    package: str
    fqn: tuple[str, ...]
    config: dict[str, Any]  # from dbt_project.yml and properties YAML, before the file's own config()
    block: str | None = None  # snapshot: the `{% snapshot %}` block of `file`


@dataclass(frozen=True)
class Rendered:
    sql: str
    config: dict[str, Any]
    refs: tuple[str, ...]  # node names ref()'d or source()'d, in order of the calls
    late: str | None = None  # rendered at build time: the key of its stand-in (see late.py)
    files: tuple[str, ...] = ()  # the macro files the render used


class RenderFailure(Exception):
    """A resource cannot be rendered; where (file, line) and why."""

    def __init__(self, file: str, message: str, line: int | None = None, late: bool = False):
        super().__init__(message)
        self.file = file
        self.message = message
        self.line = line
        self.late = late  # it queries the warehouse: a build can render it


class Disabled(Exception):  # noqa: N818 - control flow
    """`config(enabled=false)` in a resource's own file: dbt renders no further."""


class _TextLoader(jinja2.BaseLoader):
    def __init__(self, texts: dict[str, str]):
        self.texts = texts

    def get_source(self, environment: jinja2.Environment, template: str):
        if template not in self.texts:
            raise jinja2.TemplateNotFound(template)
        return self.texts[template], template, lambda: True


@dataclass(frozen=True)
class RenderedHook:
    """A hook rendered: the SQL it runs, and whether it dropped its own relation while rendering
    (`{% do adapter.drop_relation(this) %}`)."""

    sql: str
    drops_this: bool


@dataclass
class Renderer:
    """Everything rendering needs from one project: templates, macros per package, what ref() and
    source() may name, the target, the vars. Results are cached per resource."""

    root: DbtPackage
    packages: list[DbtPackage]
    dialect: str
    target: dict[str, Any]
    cli_vars: dict[str, Any]
    refs: dict[str, RefTarget] = field(default_factory=dict)  # lower-case name -> target
    sources: dict[tuple[str, str], RefTarget] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)  # nodes a post-hook of their own drops
    listed_packages: set[str] = field(default_factory=set)  # named in packages.yml / dependencies.yml
    known_columns: Callable[[str], list[Column] | None] = lambda name: None

    def __post_init__(self) -> None:
        self.texts: dict[str, str] = dict(GLOBAL_FILES)
        loader = _TextLoader(self.texts)
        self.env = make_environment(loader)
        self.native = make_environment(loader, native=True)
        self.macros: dict[str, dict[str, str]] = {}  # package -> macro name -> file
        self.resources: dict[str, Resource] = {}
        self._done: dict[str, Rendered | RenderFailure] = {}
        self._stack: list[str] = []
        self._columns: dict[str, list[Column]] = {}
        self._package_names = [p.name for p in self.packages]
        self.run_started_at = RunStartedAt.now_utc()
        self._graph: dict[str, Any] | None = None
        for file, text in GLOBAL_FILES.items():
            self.add_macro_file(INTERNAL_PACKAGE, file, text)

    # --- registration -------------------------------------------------------------------------

    def add_macro_file(self, package: str, file: str, text: str) -> list[tuple[str, int]]:
        """Register the macros of one file; the (name, line) of each that `package` already has."""
        self.texts[file] = text
        own = self.macros.setdefault(package, {})
        duplicates = []
        for m in _MACRO_DEF.finditer(text):
            name = m.group(2) if m.group(1) == "macro" else f"test_{m.group(2)}"
            if name in own and own[name] != file:
                duplicates.append((name, text.count("\n", 0, m.start()) + 1))
            own[name] = file
        return duplicates

    def add_resource(self, resource: Resource, text: str) -> None:
        self.texts[resource.file] = text
        self.resources[resource.name.lower()] = resource

    def compile_check(self, file: str) -> RenderFailure | None:
        """A Jinja syntax error of `file`, found without rendering it."""
        try:
            self.env.get_template(file)
        except jinja2.TemplateSyntaxError as exc:
            return RenderFailure(exc.filename or file, f"Jinja syntax error: {exc.message}", exc.lineno)
        return None

    # --- rendering ----------------------------------------------------------------------------

    def rendered(self, name: str) -> Rendered:
        """The resource `name` rendered as dbt runs it the first time (`is_incremental()` false)."""
        key = name.lower()
        done = self._done.get(key)
        if isinstance(done, RenderFailure):
            raise done
        if done is not None:
            return done
        if key in self._stack:
            cycle = " -> ".join([*self._stack[self._stack.index(key) :], key])
            raise DbtRenderError(f"dependency cycle while rendering: {cycle}")
        self._stack.append(key)
        try:
            try:
                out = self.render(self.resources[key])
            except RenderFailure as failure:
                if not failure.late:
                    raise
                out = self.render_late(self.resources[key], failure)
        except RenderFailure as failure:
            self._done[key] = failure
            raise
        finally:
            self._stack.pop()
        self._done[key] = out
        return out

    def resolve_aliases(self) -> None:
        """Before models render: the models whose own file may set an alias (`config(alias=...)`)
        are rendered once, so every ref() to them gives the alias (in any order, no recursion)."""
        for key, resource in self.resources.items():
            if resource.kind != "model" or "alias" not in self.texts.get(resource.file, ""):
                continue
            try:
                out = self.render(resource, execute=False)
            except (RenderFailure, DbtRenderError):
                continue  # its real render reports it
            alias = out.config.get("alias")
            if alias and key in self.refs and out.config.get("enabled") is not False:
                self.refs[key] = RefTarget(str(alias), "model", str(out.config.get("materialized", "view")))

    def render(
        self,
        resource: Resource,
        incremental: bool = False,
        execute: bool = True,
        run: BuildRunner | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> Rendered:
        """`resource` rendered; `overrides`: a unit test's `vars` and `macros` (name -> value)."""
        scope = _Scope(self, resource, incremental, execute=execute, run=run, overrides=overrides)
        try:
            sql = self.env.get_template(resource.file).render(scope.context)
        except Disabled:
            return Rendered("", scope.config, ())
        except Exception as exc:  # anything a template does is the project's error, never a crash
            raise self.failure(resource.file, exc) from None
        if resource.kind == "snapshot":
            if scope.snapshot_sql is None:
                raise RenderFailure(resource.file, f"no {{% snapshot {resource.block} %}} block")
            sql = scope.snapshot_sql
        return Rendered(sql, scope.config, tuple(dict.fromkeys(scope.refs)), files=scope.files)

    def render_late(self, resource: Resource, why: RenderFailure) -> Rendered:
        """A resource whose render queries the warehouse: rendered as dbt parses it (`execute`
        false) for its refs and configs, registered to render for real when its build runs."""
        try:
            parsed = self.render(resource, execute=False)
        except RenderFailure:
            raise why from None
        if resource.kind not in ("model", "test"):
            raise RenderFailure(
                why.file, f"{why.message} (only a model or a test can render at build time)", why.line
            )
        key = late_key(
            resource.file,
            self.texts[resource.file],
            parsed.sql,
            repr(sorted(parsed.config.items(), key=lambda kv: kv[0])),
            *(self.texts.get(f, "") for f in parsed.files),
        )

        def at_build(run: BuildRunner) -> str:
            try:
                return self.render(resource, run=run).sql
            except RenderFailure as failure:
                raise LateRenderError(f"{failure.file}:{failure.line or ''} {failure.message}") from None

        register(key, at_build)
        return Rendered(parsed.sql, parsed.config, parsed.refs, late=key, files=parsed.files)

    def render_test(
        self,
        resource: Resource,
        test: str,
        kwargs: dict[str, Any],
        line: int | None,
        execute: bool = True,
        run: BuildRunner | None = None,
    ) -> Rendered:
        """A generic test (`test_<name>` macro, maybe `package.name`) applied to `kwargs` (which
        hold `model`, maybe `column_name`, and the test's arguments; strings that are ref() or
        source() calls are evaluated)."""
        scope = _Scope(self, resource, execute=execute, run=run)
        try:
            macro = scope.test_macro(test)
            args = {k: scope.evaluate_relation(v) for k, v in kwargs.items()}
            sql = str(macro(**args))
        except Disabled:
            return Rendered("", scope.config, ())
        except Exception as exc:
            failure = self.failure(resource.file, exc)
            if failure.late and execute and run is None:
                return self._late_test(resource, test, kwargs, line, failure)
            raise RenderFailure(resource.file, failure.message, line) from None
        return Rendered(sql, scope.config, tuple(dict.fromkeys(scope.refs)), files=scope.files)

    def _late_test(
        self, resource: Resource, test: str, kwargs: dict[str, Any], line: int | None, why: RenderFailure
    ) -> Rendered:
        try:
            parsed = self.render_test(resource, test, kwargs, line, execute=False)
        except RenderFailure:
            raise RenderFailure(resource.file, why.message, line) from None
        key = late_key(
            resource.file,
            test,
            repr(sorted((k, str(v)) for k, v in kwargs.items())),
            parsed.sql,
            *(self.texts.get(f, "") for f in parsed.files),
        )

        def at_build(run: BuildRunner) -> str:
            try:
                return self.render_test(resource, test, kwargs, line, run=run).sql
            except RenderFailure as failure:
                raise LateRenderError(f"{failure.file}:{failure.line or ''} {failure.message}") from None

        register(key, at_build)
        return Rendered(parsed.sql, parsed.config, parsed.refs, late=key, files=parsed.files)

    def relation_of(self, resource: Resource, text: str, line: int | None) -> Relation:
        """Evaluate `ref('x')` / `source('s', 't')` written in YAML (a relationships test's `to`)."""
        scope = _Scope(self, resource)
        try:
            value = scope.evaluate_relation(text)
        except Exception as exc:
            raise RenderFailure(resource.file, describe(exc), line) from None
        if not isinstance(value, Relation):
            raise RenderFailure(resource.file, f"{text!r} is not a ref(...) or source(...)", line)
        return value

    def render_hook(self, resource: Resource, text: str, this: str) -> str:
        """A hook of `resource` rendered to SQL, `this` being the build it runs around."""
        return self.render_hook_of(resource, text, this).sql

    def render_hook_of(self, resource: Resource, text: str, this: str) -> RenderedHook:
        """A hook of `resource` rendered: its SQL, and whether it drops `this` (its own relation)."""
        scope = _Scope(self, resource)
        scope.context["this"] = Relation(this)
        scope.hook_this = this
        try:
            sql = str(self.env.from_string(text).render(scope.context))
        except Exception as exc:
            raise self.failure(resource.file, exc) from None
        return RenderedHook(sql, scope.drops_this)

    def render_value(self, text: str) -> Any:
        """A Jinja string from YAML (a config value), rendered to a native value."""
        scope = _Scope(self, None)
        try:
            return self.native.from_string(text).render(scope.context)
        except Exception as exc:
            raise DbtRenderError(f"cannot render {text!r}: {describe(exc)}") from None

    def failure(self, file: str, exc: BaseException) -> RenderFailure:
        """Where in the project an exception of a render happened, as a RenderFailure."""
        if isinstance(exc, RenderFailure):
            return exc
        late = isinstance(exc, NeedsWarehouse)
        if isinstance(exc, jinja2.TemplateSyntaxError):
            return RenderFailure(
                exc.filename or exc.name or file, f"Jinja syntax error: {exc.message}", exc.lineno
            )
        if isinstance(exc, jinja2.TemplateNotFound):
            return RenderFailure(file, f"template {exc.name!r} does not exist")
        if isinstance(exc, RecursionError):
            return RenderFailure(file, "macros call each other without end (recursion too deep)")
        frames = template_frames(exc, set(self.texts))
        line = next((ln for f, ln in frames if f == file), None)
        message = describe(exc)
        missing = (
            re.match(r"'(\w+)' is undefined", str(exc)) if isinstance(exc, jinja2.UndefinedError) else None
        )
        if missing and missing.group(1) in self.listed_packages:
            message = (
                f"package {missing.group(1)!r} is listed in packages.yml but not installed: run `dbt deps` "
                f"and commit {self.root.packages_path}/ (gitops-data reads packages from the commit)"
            )
        if frames and frames[-1][0] != file:
            message += f" (in {frames[-1][0]}:{frames[-1][1]})"
        return RenderFailure(file, message, line, late=late)

    # --- what models may ask ------------------------------------------------------------------

    def columns_of(self, name: str) -> list[Column]:
        """The output columns of node `name` (what dbt would read from the warehouse)."""
        key = name.lower()
        if key in self._columns:
            return self._columns[key]
        cols = self.known_columns(key)
        if cols is None:
            resource = self.resources.get(key)
            if resource is None:
                raise DbtRenderError(
                    f"cannot tell the columns of {name!r} without a warehouse: declare its columns "
                    "(`columns:` of the source or seed) or make it a dbt model"
                )
            try:
                result = self.rendered(key)
            except RenderFailure as failure:
                raise DbtRenderError(f"cannot tell the columns of {name!r}: {failure.message}") from None
            if result.late is not None:  # its SQL is known when it builds: so are its columns
                raise NeedsWarehouse(name, f"the columns of {name!r} are known when it builds")
            cols = self._sql_columns(name, result.sql)
            if resource.kind == "snapshot":
                cols = cols + [Column(c) for c in snapshot_columns(result.config)]
        self._columns[key] = cols
        return cols

    def _sql_columns(self, name: str, sql: str) -> list[Column]:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import SqlglotError
        from sqlglot.optimizer.qualify import qualify

        from gitops_data.errors import SqlError
        from gitops_data.sql import parse_query

        try:
            parsed = parse_query(sql, self.dialect)
            tree = parsed.tree
            if not isinstance(tree, exp.Query):
                raise DbtRenderError(f"cannot tell the columns of {name!r}: not a query")
            if tree.find(exp.Star) is None:
                return [Column(c) for c in tree.named_selects]
            schema = {
                ref: {c.name: "unknown" for c in self.columns_of(ref)} for ref in sorted(parsed.references)
            }
            # qualify() folds names to lower case: give them back the case they are written in
            spelled = {c.lower(): c for cols in schema.values() for c in cols}
            spelled.update({n.lower(): n for n in tree.named_selects if n != "*"})
            qualified = qualify(
                sqlglot.parse_one(sql, dialect=self.dialect),
                schema=dict(schema),
                dialect=self.dialect,
                validate_qualify_columns=False,
                identify=False,
            )
            assert isinstance(qualified, exp.Query)  # the same query, its names qualified
            return [Column(spelled.get(c.lower(), c)) for c in qualified.named_selects]
        except (SqlError, SqlglotError) as exc:
            raise DbtRenderError(f"cannot tell the columns of {name!r}: {exc}") from None

    def graph(self) -> dict[str, Any]:
        """dbt's `graph`: the project's models, snapshots, seeds (`nodes`) and `sources`, as the
        manifest has them before compiling; `depends_on` as dbt's parser fills it, from the
        literal `ref`/`source` calls and the direct macro calls of each file (see depends.py)."""
        if self._graph is not None:
            return self._graph
        nodes: dict[str, Any] = {}
        schema, database = self.target.get("schema"), self.target.get("database")
        for res in self.resources.values():
            uid = f"{res.kind}.{res.package}.{res.name}"
            nodes[uid] = {
                "unique_id": uid,
                "name": res.name,
                "resource_type": res.kind,
                "package_name": res.package,
                "path": res.file,
                "original_file_path": res.file,
                "fqn": list(res.fqn),
                "config": dict(res.config),
                "tags": list(res.config.get("tags", [])),
                "alias": str(res.config.get("alias") or res.name),
                "schema": schema,
                "database": database,
                "raw_code": self.texts.get(res.file, ""),
                "columns": {},
                "depends_on": {"nodes": [], "macros": []},
                "meta": dict(res.config.get("meta", {})),
            }
        for target in self.refs.values():
            if target.kind == "seed":
                uid = f"seed.{self.root.name}.{target.name}"
                nodes[uid] = {
                    "unique_id": uid,
                    "name": target.name,
                    "resource_type": "seed",
                    "package_name": self.root.name,
                    "alias": target.name,
                    "schema": schema,
                    "database": database,
                    "config": {},
                    "tags": [],
                    "columns": {},
                    "depends_on": {"nodes": [], "macros": []},
                }
        sources = {
            f"source.{self.root.name}.{s}.{t}": {
                "unique_id": f"source.{self.root.name}.{s}.{t}",
                "name": t,
                "source_name": s,
                "resource_type": "source",
                "package_name": self.root.name,
                "identifier": target.name,
                "schema": schema,
                "database": database,
            }
            for (s, t), target in self.sources.items()
        }
        self._fill_depends_on(nodes, sources)
        self._graph = {
            "nodes": nodes,
            "sources": sources,
            "exposures": {},
            "metrics": {},
            "groups": {},
            "semantic_models": {},
            "saved_queries": {},
        }
        return self._graph

    def _fill_depends_on(self, nodes: dict[str, Any], sources: dict[str, Any]) -> None:
        """Each resource's `depends_on.nodes` (the unique ids its file refs: models, seeds,
        snapshots and sources of the project) and `depends_on.macros` (the macros it calls)."""
        by_name: dict[str, list[str]] = {}
        for uid, node in nodes.items():
            by_name.setdefault(str(node["name"]).lower(), []).append(uid)
        for res in self.resources.values():
            uid = f"{res.kind}.{res.package}.{res.name}"
            calls = static_calls(self.env, self.texts.get(res.file, ""), res.block)
            found: list[str] = []
            for ref in calls.refs:
                ids = by_name.get(ref[-1].lower(), [])
                if len(ref) == 2:
                    ids = [i for i in ids if nodes[i].get("package_name") == ref[0]]
                elif len(ids) > 1:  # a name in several packages: dbt picks the ref's own, then the root's
                    ids = [i for i in ids if nodes[i].get("package_name") == res.package] or [
                        i for i in ids if nodes[i].get("package_name") == self.root.name
                    ]
                found += ids[:1]
            for s_name, t_name in calls.sources:
                sid = f"source.{self.root.name}.{s_name}.{t_name}"
                if sid in sources:
                    found.append(sid)
            macros = []
            for package, name in calls.macros:
                for candidate in [package] if package else [res.package, *self.search_order(None)]:
                    if name in self.macros.get(candidate or "", {}):
                        macros.append(f"macro.{candidate}.{name}")
                        break
            nodes[uid]["depends_on"] = {
                "nodes": list(dict.fromkeys(found)),
                "macros": list(dict.fromkeys(macros)),
            }

    def var_scopes(self, package: str) -> list[dict[str, Any]]:
        """Where var() looks, first match wins: the settings' vars, the root project's vars for
        `package`, its global vars, then the package's own defaults."""
        scoped_names = {self.root.name, *self._package_names}
        root_vars = self.root.vars
        scopes = [self.cli_vars]
        if isinstance(root_vars.get(package), dict):
            scopes.append(root_vars[package])
        scopes.append({k: v for k, v in root_vars.items() if k not in scoped_names})
        own = next((p for p in self.packages if p.name == package), None)
        if own is not None:
            scopes.append({k: v for k, v in own.vars.items() if k not in scoped_names})
            if isinstance(own.vars.get(package), dict):
                scopes.append(own.vars[package])
        return scopes

    def search_order(self, namespace: str | None) -> list[str]:
        if namespace is None:
            return [self.root.name, *self._package_names, INTERNAL_PACKAGE]
        configured = self.root.dispatch.get(namespace)
        if configured:
            return list(configured)
        return [self.root.name, namespace] if namespace != self.root.name else [namespace]


class _LazyGraph(Mapping):
    """`graph`, built from the project when a render first reads it (every resource is known by then)."""

    def __init__(self, renderer: Renderer):
        self._renderer = renderer

    def __getitem__(self, key: str) -> Any:
        return self._renderer.graph()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._renderer.graph())

    def __len__(self) -> int:
        return len(self._renderer.graph())


def snapshot_columns(config: dict[str, Any]) -> list[str]:
    """The columns a dbt snapshot adds to its source's (dbt's names, or snapshot_meta_column_names)."""
    names = {
        "dbt_scd_id": "dbt_scd_id",
        "dbt_updated_at": "dbt_updated_at",
        "dbt_valid_from": "dbt_valid_from",
        "dbt_valid_to": "dbt_valid_to",
    }
    custom = config.get("snapshot_meta_column_names")
    if isinstance(custom, dict):
        names.update({k: str(v) for k, v in custom.items() if k in names and v})
    return list(names.values())


class _Fixed:
    """A macro a unit test overrides: it returns the value given."""

    def __init__(self, value: Any):
        self.value = value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.value


class _MacroRef:
    """A macro as the context offers it: called, it instantiates its file's module for this render
    (with the right names in scope) and catches `return()`."""

    __slots__ = ("scope", "package", "name", "file")

    def __init__(self, scope: _Scope, package: str, name: str, file: str):
        self.scope = scope
        self.package = package
        self.name = name
        self.file = file

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        macro = self.scope.module(self.package, self.file).get(self.name)
        if macro is None:
            raise DbtRenderError(f"macro {self.package}.{self.name} is not defined in {self.file}")
        try:
            return macro(*args, **kwargs)
        except MacroReturn as ret:
            return ret.value

    def __repr__(self) -> str:
        return f"<macro {self.package}.{self.name}>"


class _Adapter:
    """`adapter`: dispatch, quoting and the columns of relations; nothing that queries."""

    def __init__(self, scope: _Scope):
        self._scope = scope

    def dispatch(
        self, macro_name: str, macro_namespace: str | None = None, packages: Any = None
    ) -> _MacroRef:
        r = self._scope.renderer
        order = list(packages) if packages else r.search_order(macro_namespace)
        for package in order:
            for prefix in (r.dialect, "default"):
                found = self._scope.macro(package, f"{prefix}__{macro_name}")
                if found is not None:
                    return found
        raise DbtRenderError(
            f"adapter.dispatch({macro_name!r}): no {r.dialect}__{macro_name} or default__{macro_name} "
            f"in {', '.join(order)} (a macro for another adapter only, or a package that is not installed)"
        )

    def quote(self, identifier: Any) -> str:
        return '"' + str(identifier).replace('"', '""') + '"'

    def quote_as_configured(self, identifier: Any, quote_key: str = "identifier") -> str:
        return str(identifier)

    def quote_seed_column(self, column: str, quote_config: bool | None = None) -> str:
        return self.quote(column) if quote_config else column

    def get_columns_in_relation(self, relation: Any) -> list[Column]:
        name = relation.name if isinstance(relation, Relation) else str(relation)
        if self._scope.run is not None:  # at build time: the warehouse's own columns and types
            target = self._scope.renderer.refs.get(name.lower())
            return [Column(c, t) for c, t in self._scope.run.columns(target.name if target else name)]
        if not self._scope.execute:  # parsing, as dbt does: columns are not asked for real
            try:
                return self._scope.renderer.columns_of(name)
            except NeedsWarehouse:
                return []
        return [InferredColumn(c.column) for c in self._scope.renderer.columns_of(name)]

    def get_relation(
        self, database: Any = None, schema: Any = None, identifier: Any = None
    ) -> Relation | None:
        target = self._scope.renderer.refs.get(str(identifier).lower())
        return Relation(target.name) if target is not None else None

    def already_exists(self, schema: Any, name: Any) -> bool:
        return str(name).lower() in self._scope.renderer.refs

    def type(self) -> str:
        return self._scope.renderer.dialect

    def drop_relation(self, relation: Any) -> str:
        """Only a hook's drop of its own relation (`this`): dbt's end state is that relation gone,
        which the loader honours by building nothing for it. Any other drop would change the
        warehouse while rendering."""
        this = self._scope.hook_this
        if this is not None and isinstance(relation, Relation) and relation.name == this:
            self._scope.drops_this = True
            return ""
        return self.__getattr__("drop_relation")

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("_", "jinja_")):
            raise AttributeError(name)
        if name in _WRITES:
            raise DbtRenderError(
                f"adapter.{name} is not supported: it would change the warehouse while rendering, and a "
                "build must not change another build (builds are immutable; a hook's SQL may write)"
            )
        raise DbtRenderError(
            f"adapter.{name} is not supported: gitops-data renders without a warehouse connection"
        )


_WRITES = {"drop_relation", "rename_relation", "truncate_relation", "create_schema", "drop_schema", "execute"}


class _Api:
    class Relation:
        @staticmethod
        def create(
            database: Any = None, schema: Any = None, identifier: Any = None, type: Any = None, **kw: Any
        ):
            return Relation(str(identifier))

        @staticmethod
        def add_ephemeral_prefix(name: str) -> str:
            return f"__dbt__cte__{name}"

    class Column:
        _LABELS = {"STRING": "TEXT"}

        @classmethod
        def translate_type(cls, dtype: str) -> str:
            return cls._LABELS.get(dtype.upper(), dtype)

        @staticmethod
        def create(name: str, label_or_dtype: str) -> Column:
            return Column(name, label_or_dtype)


class _Scope:
    """One render: its context (ref/source/config/...), the refs and macros it used, the modules of
    the macro files it called (instantiated with this render's context)."""

    def __init__(
        self,
        renderer: Renderer,
        resource: Resource | None,
        incremental: bool = False,
        package: str | None = None,
        execute: bool = True,
        run: BuildRunner | None = None,
        overrides: dict[str, Any] | None = None,
    ):
        self.overrides = overrides or {}
        self.hook_this: str | None = None  # a hook's `this` while a hook renders
        self.drops_this = False  # the hook called adapter.drop_relation(this)
        self.execute = execute
        self.run = run
        self.renderer = renderer
        self.resource = resource
        self.package = package or (resource.package if resource else renderer.root.name)
        self.config: dict[str, Any] = dict(resource.config) if resource else {}
        self.refs: list[str] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.snapshot_sql: str | None = None
        self._modules: dict[tuple[str, str], dict[str, Any]] = {}
        self._package_vars: dict[str, dict[str, Any]] = {}
        self.context = self._context(incremental)

    # --- macros -------------------------------------------------------------------------------

    def macro(self, package: str, name: str) -> Any:
        fixed = self.overrides.get("macros") or {}
        for key in (f"{package}.{name}", name):
            if key in fixed:  # a unit test's override: the macro returns this value
                return _Fixed(fixed[key])
        file = self.renderer.macros.get(package, {}).get(name)
        return _MacroRef(self, package, name, file) if file else None

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(sorted({f for _, f in self._modules}))

    def module(self, package: str, file: str) -> dict[str, Any]:
        """The macros of `file` bound to this render: its top level run with the package's names in
        scope (all of them: jinja2's own modules hide `_private` macros, which dbt packages call)."""
        key = (package, file)
        if key not in self._modules:
            template = self.renderer.env.get_template(file)
            context = template.new_context(self._vars_for(package))
            for _ in template.root_render_func(context):
                pass
            self._modules[key] = context.vars
        return self._modules[key]

    def _vars_for(self, package: str) -> dict[str, Any]:
        if package in (self.renderer.root.name, INTERNAL_PACKAGE):
            return self.context
        if package not in self._package_vars:
            own = {
                n: _MacroRef(self, package, n, f) for n, f in self.renderer.macros.get(package, {}).items()
            }
            self._package_vars[package] = {**self.context, **own}
        return self._package_vars[package]

    def test_macro(self, test: str) -> _MacroRef:
        if "." in test:
            package, name = test.split(".", 1)
            found = self.macro(package, f"test_{name}")
            if found is None:
                installed = package in self.renderer.macros
                raise DbtRenderError(
                    f"generic test {test!r}: "
                    + (
                        f"package {package!r} has no test {name!r}"
                        if installed
                        else f"package {package!r} is not installed under dbt_packages/"
                    )
                )
            return found
        for package in self.renderer.search_order(None):
            found = self.macro(package, f"test_{test}")
            if found is not None:
                return found
        raise DbtRenderError(
            f"unknown generic test {test!r} (no `{{% test {test}(...) %}}` in the project or its packages)"
        )

    def evaluate_relation(self, value: Any) -> Any:
        """A test argument: `ref(...)` / `source(...)` strings are evaluated, anything else kept."""
        if isinstance(value, str) and re.fullmatch(r"\s*(ref|source)\s*\(.*\)\s*", value, re.S):
            return compile_expression(self.renderer.env, value.strip(), undefined_to_none=False)(self.context)
        return value

    # --- context ------------------------------------------------------------------------------

    def _context(self, incremental: bool) -> dict[str, Any]:
        r = self.renderer
        res = self.resource
        config = ConfigCall(self.config, self._set_config)
        this = None
        if res is not None and res.kind in ("model", "snapshot"):
            this = Relation(
                str(self.config.get("alias") or res.name), _relation_type(self.config.get("materialized"))
            )
        model = {
            "name": res.name if res else None,
            "alias": res.name if res else None,
            "resource_type": res.kind if res else None,
            "package_name": self.package,
            "unique_id": f"{res.kind}.{res.package}.{res.name}" if res else None,
            "original_file_path": res.file if res else None,
            "path": res.file if res else None,
            "fqn": list(res.fqn) if res else [],
            "config": self.config,
            "tags": self.config.get("tags", []),
            "schema": r.target.get("schema"),
            "database": r.target.get("database"),
            "raw_code": "",
        }
        ctx: dict[str, Any] = {
            "ref": self.ref,
            "source": self.source,
            "config": config,
            "var": self.var,
            "env_var": env_var,
            "this": this,
            "is_incremental": lambda: incremental,
            "should_full_refresh": lambda: False,
            "should_store_failures": lambda: False,
            "target": r.target,
            "adapter": _Adapter(self),
            "api": _Api,
            "exceptions": Exceptions(),
            "modules": MODULES,
            "return": macro_return,
            "log": lambda *args, **kwargs: "",
            "print": lambda *args, **kwargs: "",
            "tojson": tojson,
            "fromjson": fromjson,
            "toyaml": toyaml,
            "fromyaml": fromyaml,
            "zip": try_zip,
            "zip_strict": lambda *args: zip(*args, strict=False),
            "set": try_set,
            "set_strict": set_strict,
            "local_md5": local_md5,
            "execute": self.execute,
            "flags": dict(_FLAGS),
            "model": model,
            "project_name": r.root.name,
            "dbt_version": DBT_VERSION,
            "statement": self.statement,
            "run_query": self.run_query,
            "load_result": self.results.get,
            "store_result": lambda *args, **kwargs: "",
            "builtins": {"ref": self.ref, "source": self.source, "config": config},
            "graph": _LazyGraph(r),
            "run_started_at": r.run_started_at,
            "invocation_id": INVOCATION_ID,
            "selected_resources": [],
            "database": r.target.get("database"),
            "schema": r.target.get("schema"),
            "load_relation": lambda relation: relation,
            "doc": lambda *args: "",
            "_dbt_snapshot_block": self._snapshot_block,
        }
        for package in r.macros:
            ctx[package] = Namespace(package, functools.partial(self.macro, package))
        for name, file in r.macros.get(INTERNAL_PACKAGE, {}).items():
            ctx.setdefault(name, _MacroRef(self, INTERNAL_PACKAGE, name, file))
        for name, file in r.macros.get(r.root.name, {}).items():
            ctx[name] = _MacroRef(self, r.root.name, name, file)
        for name, value in (self.overrides.get("macros") or {}).items():
            if "." not in name:
                ctx[name] = _Fixed(value)
        if self.package not in (r.root.name, INTERNAL_PACKAGE):  # a package's model: its own macros first
            for name, file in r.macros.get(self.package, {}).items():
                ctx[name] = _MacroRef(self, self.package, name, file)
        return ctx

    def _set_config(self, values: dict[str, Any]) -> None:
        self.config.update(merge_config(self.config, values))
        this = self.context.get("this") if hasattr(self, "context") else None
        if isinstance(this, Relation) and values.get("alias"):
            this.renamed(str(values["alias"]))
        if self.resource is not None and values.get("enabled") is False:
            raise Disabled()

    def _snapshot_block(self, name: str, caller: Any) -> str:
        if self.resource is not None and name == self.resource.block:
            self.snapshot_sql = str(caller())
        return ""

    def ref(self, *args: Any, **kwargs: Any) -> Relation:
        if set(kwargs) & {"v", "version"}:
            raise DbtRenderError("ref() to a model version is not supported")
        if len(args) == 2:
            package, name = (str(a) for a in args)
            known = {self.renderer.root.name, *self.renderer._package_names}
            if package not in known:
                raise DbtRenderError(f"ref({package!r}, {name!r}): no package named {package!r} is installed")
        elif len(args) == 1:
            name = str(args[0])
        else:
            raise DbtRenderError("ref() takes a model name, or a package and a model name")
        target = self.renderer.refs.get(name.lower())
        if target is None:
            import difflib

            if name.lower() in self.renderer.disabled:
                raise DbtRenderError(f"ref({name!r}): {name} is disabled (enabled: false)")
            if name.lower() in self.renderer.dropped:
                raise DbtRenderError(
                    f"ref({name!r}): {name}'s post-hook drops it (adapter.drop_relation(this)), "
                    "so there is nothing to read"
                )
            hint = difflib.get_close_matches(name.lower(), list(self.renderer.refs), n=1)
            raise DbtRenderError(
                f"ref({name!r}): no model, seed or snapshot named {name!r}"
                + (f"; did you mean {self.renderer.refs[hint[0]].name!r}?" if hint else "")
            )
        self.refs.append(target.name)
        return Relation(target.name, _relation_type(target.materialized))

    def source(self, source_name: Any, table_name: Any) -> Relation:
        target = self.renderer.sources.get((str(source_name).lower(), str(table_name).lower()))
        if target is None:
            known = sorted(f"{s}.{t}" for s, t in self.renderer.sources)
            raise DbtRenderError(
                f"source({source_name!r}, {table_name!r}) is not declared under `sources:`"
                + (f" (declared: {', '.join(known[:10])})" if known else "")
            )
        self.refs.append(target.name)
        return Relation(target.name, "external" if target.kind == "source" else "table")

    def var(self, name: str, default: Any = _MISSING) -> Any:
        for scope in [self.overrides.get("vars") or {}, *self.renderer.var_scopes(self.package)]:
            if name in scope:
                return scope[name]
        if default is not _MISSING:
            return default
        raise DbtRenderError(
            f"required var {name!r} is not set: give it under `vars:` in dbt_project.yml "
            "(or `dbt_project: {vars: ...}` in gitops_data.yaml), or a default: var('name', default)"
        )

    def statement(
        self,
        name: str | None = None,
        fetch_result: bool = False,
        auto_begin: bool = True,
        language: str = "sql",
        caller: Any = None,
    ) -> str:
        if not self.execute:  # dbt parses without running statements
            return ""
        table = self._query(str(caller()) if caller is not None else "")
        if name:
            self.results[name] = {"data": table.rows, "table": table, "response": None}
        return ""

    def run_query(self, sql: str) -> Any:
        return self._query(str(sql)) if self.execute else None

    def _query(self, sql: str) -> ResultTable:
        """A statement's result: by the in-memory engine when constant, else by the build's runner
        (a render at build time), else it needs the warehouse (the resource renders late)."""
        if self.run is not None and reads_tables(sql, self.renderer.dialect):
            names, rows = self.run(sql)
            return ResultTable(names, rows)
        return constant_query(sql, self.renderer.dialect)


def _relation_type(materialized: Any) -> str:
    return {"view": "view", "ephemeral": "cte"}.get(str(materialized), "table")


def env_var(name: str, default: Any = _MISSING) -> Any:
    """dbt's env_var(): the rendered SQL (so the fingerprint) follows the variable."""
    if name.startswith("DBT_ENV_SECRET"):
        raise DbtRenderError(f"env_var({name!r}): secrets may not be rendered into SQL")
    if name in os.environ:
        return os.environ[name]
    if default is not _MISSING:
        return default
    raise DbtRenderError(f"env_var({name!r}): the environment variable is not set and has no default")
