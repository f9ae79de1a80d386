"""Load a dbt project (dbt_project.yml, models, sources, seeds, snapshots, tests, macros, installed
packages) as nodes of our Project, so plans, builds, audits and publishes treat it like YAML models.

Mapping (see README "Bring your dbt project"):
- a model -> an SQL node of its file's name; materialized table | view | ephemeral as ours (dbt's
  default, view, too); incremental -> our incremental spec (column: `incremental_column` in the
  config, else the column of its `where x > (select max(x) from {{ this }})` filter).
- a source table -> node `<source>__<table>`: a file source when it has a dbt-duckdb
  `external_location` that is a file in the repository, else an external table node.
- a seed -> a seed node (`column_types` are declared types, cast on load).
- a snapshot -> `<name>__history` (our SCD-2 snapshot) and a view `<name>` with dbt's columns
  (dbt_scd_id, dbt_updated_at, dbt_valid_from, dbt_valid_to); a snapshot query that is not a plain
  `select * from <relation>` reads a view `<name>__input` holding it.
- tests -> checks (see tests.py); a singular test belongs to the first model it refs that has a
  table, and reads the others.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import posixpath
import re
from typing import Any, NamedTuple

from pydantic import ValidationError

from gitops_data.capabilities import for_dialect
from gitops_data.errors import SqlError
from gitops_data.naming import identifier_problem, quote
from gitops_data.project.collector import Collector, data_file, read_yaml_mapping
from gitops_data.project.dbt.hooks import HookError, transpile_hook
from gitops_data.project.dbt.incremental import watched_columns
from gitops_data.project.dbt.jinja import Column, DbtRenderError, Relation
from gitops_data.project.dbt.late import LateRenderError, key_of, stand_in
from gitops_data.project.dbt.project import (
    PROJECT_FILE,
    DbtPackage,
    DbtProjectError,
    installed_packages,
    key_name,
    listed_packages,
    merge_config,
    read_package,
    rendered,
    tree_config,
)
from gitops_data.project.dbt.render import (
    RefTarget,
    Rendered,
    Renderer,
    RenderFailure,
    Resource,
    snapshot_columns,
)
from gitops_data.project.dbt.tests import (
    TestMappingError,
    TestSpec,
    check_config,
    map_tests,
    query_checks,
    read_tests,
    severity_of,
    stored_as,
)
from gitops_data.project.nodes import THIS_TOKEN, Node
from gitops_data.project.schema import (
    SETTINGS_FILE,
    ColumnSpec,
    IncrementalSpec,
    ModelCheck,
    Settings,
    SnapshotSpec,
)
from gitops_data.project.tree import UnsafePath, normalize
from gitops_data.project.yaml_lines import LineDict
from gitops_data.sql import DIALECT, ParsedSql, canonical_type, parse_query, target_problems

_SNAPSHOT_BLOCK = re.compile(r"\{%-?\s*snapshot\s+([A-Za-z_]\w*)\s*-?%\}")
_READER = re.compile(r"^\s*read_(csv|csv_auto|parquet|json|json_auto|ndjson)\s*\(\s*'([^']+)'\s*\)\s*$", re.I)
_MATERIALIZED = {"table", "view", "ephemeral", "incremental"}
_STRATEGIES = {None, "append", "merge", "delete+insert"}
_TEST_CONFIGS = {
    "severity",
    "where",
    "enabled",
    "error_if",
    "warn_if",
    "fail_calc",
    "limit",
    "store_failures",
    "store_failures_as",
}


def source_node_name(source: str, table: str) -> str:
    """The node a dbt source table becomes: `<source>__<table>`."""
    return f"{source}__{table}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    """A YAML mapping, or nothing when the value is something else."""
    return dict(value) if isinstance(value, dict) else {}


def _entries(value: Any) -> list:
    """A YAML list, or nothing when the value is something else."""
    return list(value) if isinstance(value, list) else []


def _listed(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]


@dataclasses.dataclass
class _Entry:
    """A resource's entry in a properties YAML file."""

    file: str
    data: LineDict
    package: DbtPackage | None = None  # None: the root project

    @property
    def line(self) -> int | None:
        return self.data.line or None

    @property
    def config(self) -> dict[str, Any]:
        return _dict(self.data.get("config"))


class DbtLoader:
    """One load of the dbt project of a data repo, reporting into the YAML loader's collector."""

    def __init__(self, c: Collector, settings: Settings, target: str, root: DbtPackage | None, folder: str):
        self.c = c
        self.tree = c.tree
        self.target = target
        self.root = root
        self.folder = folder
        self.settings = settings
        if root is not None and not self.tree.exists(SETTINGS_FILE):
            self.settings = settings.model_copy(update={"name": root.name})
        self.dialect = self.settings.dialect
        self._hook_errors: set[tuple[tuple[str, int | None], str]] = set()
        # the engine's limit on a published name (PostgreSQL's 63 bytes; none on DuckDB)
        engine = for_dialect(target)
        self.max_identifier: int | None = engine.max_identifier if engine else None
        self.nodes: dict[str, Node] = {}
        self.props: dict[str, dict[str, _Entry]] = {"models": {}, "seeds": {}, "snapshots": {}}
        self.renderer: Renderer | None = None
        self._all: list[str] = []
        self._sources_props: list[tuple[str, LineDict, LineDict, DbtPackage | None]] = []
        self._test_targets: list[tuple[str, _Entry, tuple[str, ...]]] = []  # (node, properties, fqn parts)
        self.packages: list[DbtPackage] = []
        self._python_files: list[tuple[str, str, DbtPackage]] = []  # dbt Python models
        self.unit_tests: list[_Entry] = []  # `unit_tests:` entries of the properties files

    @classmethod
    def open(cls, c: Collector, settings: Settings, target: str) -> DbtLoader:
        """The dbt project named by `dbt_project:` in the settings, or at the repository root."""
        path = settings.dbt_project.path if settings.dbt_project is not None else "."
        try:
            folder = "" if path.strip() in (".", "./", "") else normalize(path).rstrip("/")
        except UnsafePath as exc:
            c.add(SETTINGS_FILE, f"dbt_project.path: {exc}")
            return cls(c, settings, target, None, "")
        file = posixpath.join(folder, PROJECT_FILE) if folder else PROJECT_FILE
        if not c.tree.exists(file):
            c.add(SETTINGS_FILE, f"dbt_project: {file} does not exist")
            return cls(c, settings, target, None, folder)
        try:
            root = read_package(c.tree, folder)
        except DbtProjectError as exc:
            c.add(exc.file, str(exc), exc.line)
            return cls(c, settings, target, None, folder)
        return cls(c, settings, target, root, folder)

    @property
    def yaml_settings(self) -> Settings:
        """The settings with the dbt project's files excluded from gitops-data YAML."""
        root = self.root or DbtPackage(name="dbt", root=self.folder, file=PROJECT_FILE)
        return self.settings.model_copy(update={"exclude": [*self.settings.exclude, *root.owned_globs()]})

    def add(self, file: str, message: str, line: int | None = None, model: str | None = None) -> None:
        self.c.add(file, message, line, model)

    # --- files --------------------------------------------------------------------------------

    def _files(self, folders: tuple[str, ...], suffixes: tuple[str, ...]) -> list[tuple[str, str]]:
        """(repo path, path relative to its folder) of the files under `folders` ending in `suffixes`."""
        out = []
        for folder in folders:
            prefix = f"{folder}/" if folder and folder != "." else ""
            for f in self._all:
                if f.startswith(prefix) and f.lower().endswith(suffixes):
                    out.append((f, f[len(prefix) :]))
        return out

    def _read(self, path: str, model: str | None = None) -> str | None:
        try:
            return self.tree.read(path).decode("utf-8-sig")
        except UnicodeDecodeError:
            self.add(path, "file is not UTF-8 text", None, model)
        except (OSError, UnsafePath) as exc:
            self.add(path, f"cannot read: {exc}", None, model)
        return None

    def _declare(
        self,
        seen: dict[str, tuple[str, int | None]],
        name: str,
        file: str,
        line: int | None,
        published: bool = True,
    ) -> bool:
        """Register `name` (`published`: it names a view, so the engine's length limit applies)."""
        problem = identifier_problem(name, self.max_identifier if published else None)
        if problem:
            self.add(file, f"name {name!r} {problem}", line, name)
            return False
        if name.lower() in seen:
            other_file, other_line = seen[name.lower()]
            self.add(file, f"duplicate name {name!r}: also declared at {other_file}:{other_line}", line, name)
            return False
        seen[name.lower()] = (file, line)
        return True

    # --- the load -----------------------------------------------------------------------------

    def load(self, seen: dict[str, tuple[str, int | None]], yaml_nodes: set[str]) -> dict[str, Node]:
        """Every node of the dbt project (the names it declares go into `seen`)."""
        if self.root is None:
            return {}
        root = self.root
        self._all = self.tree.files()
        packages = []
        for folder in installed_packages(self.tree, root):
            try:
                packages.append(read_package(self.tree, folder))
            except DbtProjectError as exc:
                self.add(exc.file, str(exc), exc.line)
        dbt_cfg = self.settings.dbt_project
        target = {
            "name": dbt_cfg.target if dbt_cfg else "prod",
            "target_name": dbt_cfg.target if dbt_cfg else "prod",
            "schema": self.settings.external_schema,
            "type": self.dialect,
            "database": "",
            "threads": 1,
            "profile_name": root.profile or root.name,
            "user": "",
        }
        r = self.renderer = Renderer(
            root,
            packages,
            self.dialect,
            target,
            dict(dbt_cfg.vars) if dbt_cfg else {},
            known_columns=self._columns,
        )
        r.listed_packages = listed_packages(self.tree, root) - {p.name for p in packages}
        self.packages = packages
        self._macros(root, packages)
        for package in [root, *packages]:  # dbt loads the models, seeds and tests of packages too
            self._properties(package)
        for name in yaml_nodes:
            r.refs[name.lower()] = RefTarget(name, "node")
        self._sources(seen)
        resources: list[Resource] = []
        tests: list[Resource] = []
        for package in [root, *packages]:
            self._seeds(seen, package)
        for package in [root, *packages]:
            resources += self._resources(seen, package)
            tests += self._singular_tests(package)
        r.resolve_aliases()
        for res in resources:
            if res.kind == "model":
                self._model(res, seen)
            else:
                self._snapshot(res, seen)
        for path, rel, package in self._python_files:
            self._python_model(path, rel, package, seen)
        self._tests()
        self._unit_tests()
        for res in tests:
            self._singular(res)
        for node in self.nodes.values():
            gone = sorted(d for d in node.deps if d.lower() in r.dropped)
            if gone:  # rendered before the node it reads was found to drop itself
                self.add(
                    node.file,
                    f"reads {', '.join(gone)}, whose post-hook drops it (adapter.drop_relation(this)): "
                    "there is nothing to read",
                    node.line,
                    node.name,
                )
            if node.ephemeral and (
                node.checks or any(c.nullable is False or c.unique or c.checks for c in node.columns.values())
            ):
                self.add(
                    node.file,
                    "an ephemeral model is inlined into its downstream models and has no table to test; "
                    "make it a view to keep its tests",
                    node.line,
                    node.name,
                )
        return self.nodes

    def _macros(self, root: DbtPackage, packages: list[DbtPackage]) -> None:
        r = self.renderer
        assert r is not None
        for package in [root, *packages]:
            files = self._files(package.folders("macro"), (".sql",))
            files += [
                (f, rel) for f, rel in self._files(package.folders("test"), (".sql",)) if "generic/" in rel
            ]
            for file, _ in files:
                text = self._read(file)
                if text is None:
                    continue
                for name, line in r.add_macro_file(package.name, file, text):
                    self.add(file, f"macro {name!r} is defined twice in package {package.name}", line)
                if package is root:
                    failure = r.compile_check(file)
                    if failure is not None:
                        self.add(failure.file, failure.message, failure.line)

    def _properties(self, root: DbtPackage) -> None:
        """Read the properties YAML files (schema.yml) of a project's (or package's) resource folders."""
        package = None if root is self.root else root

        folders = tuple(
            dict.fromkeys(root.folders(k) for k in ("model", "seed", "snapshot", "test", "macro", "analysis"))
        )
        seen_files = set()
        for group in folders:
            for file, _ in self._files(group, (".yml", ".yaml")):
                if file in seen_files:
                    continue
                seen_files.add(file)
                data = read_yaml_mapping(
                    self.c, file, "a properties file is a mapping (version: 2, models: ...)"
                )
                if data is None:
                    continue
                for entry in _entries(data.get("unit_tests")):
                    self.unit_tests.append(
                        _Entry(file, entry) if isinstance(entry, LineDict) else _Entry(file, LineDict())
                    )
                for key in ("models", "seeds", "snapshots", "sources"):
                    entries = data.get(key)
                    if entries is None:
                        continue
                    if not isinstance(entries, list):
                        self.add(file, f"`{key}` must be a list", data.key_lines.get(key))
                        continue
                    for entry in entries:
                        if not isinstance(entry, LineDict) or not isinstance(entry.get("name"), str):
                            self.add(
                                file, f"each entry of `{key}` needs a `name`", getattr(entry, "line", None)
                            )
                            continue
                        for field, kind in (("columns", list), ("config", dict), ("tables", list)):
                            if entry.get(field) is not None and not isinstance(entry[field], kind):
                                what = "a list" if kind is list else "a mapping"
                                self.add(
                                    file, f"{field} must be {what}", entry.key_lines.get(field), entry["name"]
                                )
                        if key == "sources":
                            for table in _entries(entry.get("tables")):
                                if isinstance(table, LineDict) and isinstance(table.get("name"), str):
                                    self._sources_props.append((file, entry, table, package))
                                else:
                                    self.add(
                                        file,
                                        "each table of a source needs a `name`",
                                        getattr(table, "line", None),
                                    )
                            continue
                        name = entry["name"]
                        if name.lower() in self.props[key]:
                            other = self.props[key][name.lower()]
                            self.add(
                                file,
                                f"{key[:-1]} {name!r} has properties twice (also {other.file}:{other.line})",
                                entry.line,
                                name,
                            )
                            continue
                        self.props[key][name.lower()] = _Entry(file, entry, package)

    def _config(
        self, kind: str, parts: tuple[str, ...], entry: _Entry | None, package: DbtPackage | None = None
    ) -> dict[str, Any]:
        """A resource's config: its package's dbt_project.yml `kind:` tree, the root project's (which
        wins), then its properties' `config:`, with the Jinja in them rendered."""
        assert self.root is not None
        package = package or (entry.package if entry else None) or self.root
        tree = tree_config(package.configs.get(kind), package.name, parts)
        if package is not self.root:
            tree = merge_config(tree, tree_config(self.root.configs.get(kind), package.name, parts))
        cfg = self._value(_without_hooks(tree), self.root.file, None)
        cfg.update({k: v for k, v in tree.items() if k in _HOOKS})  # hooks render when they run
        if entry is not None:
            own = {key_name(k): v for k, v in entry.config.items()}
            own_cfg = self._value(_without_hooks(own), entry.file, entry.line)
            own_cfg.update({k: v for k, v in own.items() if k in _HOOKS})
            cfg = merge_config(cfg, own_cfg)
        return cfg

    def _hooks(self, res: Resource, cfg: dict[str, Any]) -> _Hooks | None:
        """The statements run before and after a build of `res`: on-run-start of every project,
        its pre-hooks; its post-hooks, on-run-end (rendered, `this` the build's table); and whether
        a post-hook drops `this` (a pre-hook's drop is of a relation the build replaces anyway)."""
        r, root = self.renderer, self.root
        assert r is not None and root is not None
        projects = [root, *self.packages]
        post = _hook_list(cfg.get("post-hook"))
        out: list[tuple[str, ...]] = []
        untranslatable = False
        drops_this = False
        for side, templates in enumerate(
            (
                [h for p in projects for h in p.on_run_start] + _hook_list(cfg.get("pre-hook")),
                post + [h for p in projects for h in p.on_run_end],
            )
        ):
            rendered_hooks = []
            for i, text in enumerate(templates):
                try:
                    hook = r.render_hook_of(res, text, THIS_TOKEN)
                except RenderFailure as failure:
                    self.add(_file(res), f"hook {text.strip()[:60]!r}: {failure.message}", None, res.name)
                    return None
                drops_this = drops_this or (hook.drops_this and side == 1 and i < len(post))
                sql = hook.sql.strip()
                try:
                    sql = transpile_hook(sql, self.dialect, self.target)
                except HookError as exc:  # every hook that cannot run is reported, not only the first
                    self._hook_error(res, text, projects, str(exc))
                    untranslatable = True
                if sql:
                    rendered_hooks.append(sql)
            out.append(tuple(rendered_hooks))
        return None if untranslatable else _Hooks(out[0], out[1], drops_this)

    def _hook_error(self, res: Resource, template: str, projects: list[DbtPackage], why: str) -> None:
        """A hook that cannot run on the warehouse, reported once at the file and line that has it
        (the model's file, or a dbt_project.yml for on-run-start/end and config trees)."""
        first = next((ln.strip() for ln in template.splitlines() if ln.strip()), "")[:20]
        where: tuple[str, int | None] = (_file(res), None)
        for file in dict.fromkeys([_file(res), *(p.file for p in projects)]):
            text = self.renderer.texts.get(file) if self.renderer else None
            if text is None and self.tree.exists(file):
                text = self._read(file)
            at = text.find(first) if text and first else -1
            if text and at >= 0:
                where = (file, text.count("\n", 0, at) + 1)
                break
        message = f"hook {template.strip()[:60]!r} cannot run on {self.target}: {why}"
        if (where, message) in self._hook_errors:
            return
        self._hook_errors.add((where, message))
        self.add(where[0], message, where[1], res.name if where[0] == _file(res) else None)

    def _dropped_by_its_hook(self, name: str, entry: _Entry | None) -> None:
        """A node whose post-hook drops its own relation: dbt builds it and drops it, so nothing
        reads it afterwards; here it is not built, and a ref to it or a test on it is an error."""
        r = self.renderer
        assert r is not None
        r.refs.pop(name.lower(), None)
        r.dropped.add(name.lower())
        tested = entry is not None and (
            entry.data.get("data_tests")
            or entry.data.get("tests")
            or any(
                isinstance(c, dict) and (c.get("data_tests") or c.get("tests"))
                for c in _listed(entry.data.get("columns"))
            )
        )
        if tested and entry is not None:
            self.add(
                entry.file,
                f"{name} has tests, but its post-hook drops it (adapter.drop_relation(this)): "
                "there is nothing to test; remove the tests or the hook",
                entry.line,
                name,
            )

    def _value(self, value: Any, file: str, line: int | None) -> Any:
        """A YAML value with its Jinja rendered (dbt renders configs)."""
        assert self.renderer is not None
        try:
            return rendered(value, self.renderer.render_value)
        except DbtRenderError as exc:
            self.add(file, str(exc), line)
            return value

    # --- sources and seeds --------------------------------------------------------------------

    def _sources(self, seen: dict[str, tuple[str, int | None]]) -> None:

        r = self.renderer
        assert r is not None and self.root is not None
        for file, source, table, package in self._sources_props:
            sname, tname = source["name"], table["name"]
            name = source_node_name(sname, tname)
            line = table.line
            cfg = merge_config(
                self._config("sources", (sname, tname), None, package),
                self._value({**_dict(source.get("config")), **_dict(table.get("config"))}, file, line),
            )
            if cfg.get("enabled") is False:
                r.disabled.add(name.lower())
                continue
            if not self._declare(seen, name, file, line):
                continue
            meta = {**_dict(source.get("meta")), **_dict(table.get("meta")), **_dict(cfg.get("meta"))}
            location = cfg.get("external_location") or meta.get("external_location")
            r.sources[(sname.lower(), tname.lower())] = RefTarget(name, "source" if location else "table")
            columns = {
                col["name"]: ColumnSpec(description=_text(col.get("description")))
                for col in _entries(table.get("columns"))
                if isinstance(col, dict) and isinstance(col.get("name"), str)
            }
            common: dict[str, Any] = dict(
                name=name,
                file=file,
                line=line,
                description=_text(table.get("description")),
                columns=columns,
                tags=tuple(str(t) for t in _listed(cfg.get("tags"))),
            )
            if location:
                fields = {
                    "name": tname,
                    "identifier": table.get("identifier", tname),
                    "schema": source.get("schema", sname),
                    "database": source.get("database") or "",
                    "tags": _listed(cfg.get("tags")),
                    **meta,
                }
                if meta.get("formatter", cfg.get("formatter", "newstyle")) != "newstyle":
                    self.add(
                        file,
                        "external_location: only the default formatter (newstyle, {name}) is supported",
                        line,
                        name,
                    )
                    continue
                try:
                    text = str(self._value(location, file, line)).format_map(fields).strip().strip("'")
                except (KeyError, ValueError, IndexError, AttributeError) as exc:
                    self.add(file, f"external_location {location!r}: cannot fill in {exc}", line, name)
                    continue
                reader = _READER.match(text)
                path, fmt = (reader.group(2), reader.group(1).split("_")[0]) if reader else (text, None)
                if fmt == "ndjson":
                    fmt = "json"
                if "(" in path or "://" in path:
                    self.add(
                        file,
                        f"external_location {text!r}: only a csv, parquet or json file in the repository "
                        "(a path, or read_csv('path')) can be a source",
                        line,
                        name,
                    )
                    continue
                data = data_file(self.c, (package or self.root).path(path), file, line, name, fmt)
                if data is None:
                    continue
                node = Node(kind="source", **common, **data)
            else:
                parts = [
                    str(p)
                    for p in (
                        self._value(source.get("database"), file, line),
                        self._value(source.get("schema", sname), file, line),
                        self._value(table.get("identifier", tname), file, line),
                    )
                    if p
                ]
                bad = [p for p in parts if identifier_problem(p)]
                if bad:
                    self.add(
                        file, f"source {sname}.{tname}: {bad[0]!r} is not a plain identifier", line, name
                    )
                    continue
                node = Node(kind="table", table=".".join(parts), **common)
            self.nodes[name] = node
            # an external table has no build: its tests run as checks of the models that read it
            self._test_targets.append((name, _Entry(file, table, package), (sname,)))

    def _seeds(self, seen: dict[str, tuple[str, int | None]], package: DbtPackage) -> None:

        r = self.renderer
        assert r is not None and self.root is not None
        for path, rel in self._files(package.folders("seed"), (".csv",)):
            name = posixpath.splitext(posixpath.basename(rel))[0]
            parts = tuple(posixpath.dirname(rel).split("/")) if "/" in rel else ()
            entry = self.props["seeds"].get(name.lower())
            line = entry.line if entry else None
            cfg = self._config("seeds", (*parts, name), entry, package)
            if cfg.get("enabled") is False:
                r.disabled.add(name.lower())
                continue
            if not self._declare(seen, name, path, None):
                continue
            r.refs[name.lower()] = RefTarget(name, "seed")
            columns: dict[str, ColumnSpec] = {}
            types = cfg.get("column_types") or {}
            for col, type_ in types.items() if isinstance(types, dict) else []:
                canonical = canonical_type(str(type_))
                if canonical is None:
                    self.add(
                        entry.file if entry else self.root.file,
                        f"column_types.{col}: {type_!r} is not a DuckDB type",
                        line,
                        name,
                    )
                    continue
                columns[col] = ColumnSpec(type=canonical)
            data = data_file(self.c, path, path, None, name, "csv")
            seed = Resource(name, "seed", path, package.name, (package.name, *parts, name), cfg)
            hooks = self._hooks(seed, cfg)
            if data is None or hooks is None:
                continue
            if hooks.drops_this:
                self._dropped_by_its_hook(name, entry)
                continue
            self.nodes[name] = Node(
                name=name,
                kind="seed",
                file=path,
                line=None,
                description=_text(entry.data.get("description")) if entry else None,
                tags=tuple(str(t) for t in _listed(cfg.get("tags"))),
                owner=_owner(cfg, entry),
                columns=columns,
                pre_hooks=hooks[0],
                post_hooks=hooks[1],
                **data,
            )
            if entry is not None:
                self._test_targets.append((name, entry, parts))

    def _columns(self, name: str) -> list[Column] | None:
        """Columns of nodes that are not rendered (seeds, sources), for `star` and friends."""
        node = self.nodes.get(name) or next((n for k, n in self.nodes.items() if k.lower() == name), None)
        if node is None or node.kind not in ("seed", "source", "table"):
            return None
        if node.columns and node.kind != "seed":
            return [Column(c) for c in node.columns]
        if node.kind == "table" or node.data_format != "csv":
            return None  # no declared columns, and nothing to read them from
        try:
            text = self.tree.read(node.data_path or "").decode("utf-8-sig", errors="replace")
            header = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
        except OSError:
            return None
        return [Column(c.strip()) for c in header]

    # --- models and snapshots -----------------------------------------------------------------

    def _resources(self, seen: dict[str, tuple[str, int | None]], root: DbtPackage) -> list[Resource]:
        """Models and snapshot blocks of a project (or package), registered with the renderer (not
        rendered yet)."""
        r = self.renderer
        assert r is not None
        out: list[Resource] = []
        for path, rel in self._files(root.folders("model"), (".sql", ".py")):
            name = posixpath.splitext(posixpath.basename(rel))[0]
            if path.endswith(".py"):
                self._python_files.append((path, rel, root))
                r.refs[name.lower()] = RefTarget(name, "model", "table")
                continue
            parts = tuple(posixpath.dirname(rel).split("/")) if "/" in rel else ()
            entry = self.props["models"].get(name.lower())
            cfg = self._config("models", (*parts, name), entry, root)
            if cfg.get("enabled") is False:
                r.disabled.add(name.lower())
                continue
            text = self._read(path, name)
            if text is None or not self._declare(seen, name, path, 1, published=False):
                continue
            res = Resource(name, "model", path, root.name, (root.name, *parts, name), cfg)
            r.add_resource(res, text)
            r.refs[name.lower()] = RefTarget(name, "model", str(cfg.get("materialized", "view")))
            out.append(res)
        for path, rel in self._files(root.folders("snapshot"), (".sql",)):
            text = self._read(path)
            if text is None:
                continue
            parts = tuple(posixpath.dirname(rel).split("/")) if "/" in rel else ()
            for m in _SNAPSHOT_BLOCK.finditer(text):
                out += self._snapshot_resource(
                    seen, m.group(1), path, text, parts, text.count("\n", 0, m.start()) + 1, root
                )
        for name, entry in self.props["snapshots"].items():
            relation = entry.data.get("relation")
            if (entry.package or self.root) is not root:
                continue
            if isinstance(relation, str) and name not in {res.name.lower() for res in out}:
                block = entry.data["name"]
                text = f"{{% snapshot {block} %}}select * from {{{{ {relation} }}}}{{% endsnapshot %}}"
                out += self._snapshot_resource(
                    seen,
                    entry.data["name"],
                    f"{entry.file}#{entry.data['name']}",
                    text,
                    (),
                    entry.line,
                    root,
                    entry.file,
                )
        return out

    def _snapshot_resource(
        self,
        seen: dict[str, tuple[str, int | None]],
        name: str,
        template: str,
        text: str,
        parts: tuple[str, ...],
        line: int | None,
        root: DbtPackage,
        file: str | None = None,
    ) -> list[Resource]:
        r = self.renderer
        assert r is not None
        entry = self.props["snapshots"].get(name.lower())
        cfg = self._config("snapshots", (*parts, name), entry, root)
        if cfg.get("enabled") is False:
            r.disabled.add(name.lower())
            return []
        file = file or template
        if not self._declare(seen, name, file, line):
            return []
        res = Resource(name, "snapshot", template, root.name, (root.name, *parts, name), cfg, block=name)
        r.add_resource(res, text)
        r.refs[name.lower()] = RefTarget(name, "snapshot", "view")
        return [res]

    def _sql(self, res: Resource, sql: str, source_text: str) -> ParsedSql | None:
        """The rendered SQL of `res` checked like a YAML model's, parsed."""
        try:
            parsed = parse_query(sql, self.dialect)
        except SqlError as exc:
            line = exc.sql_line if exc.sql_line and source_text.count("\n") == sql.count("\n") else None
            where = "" if line or exc.sql_line is None else f" (line {exc.sql_line} of the rendered SQL)"
            self.add(_file(res), f"{exc}{where}", line, res.name)
            return None
        problems = target_problems(parsed, self.target)
        for problem in problems:
            self.add(_file(res), f"{problem} (the warehouse is {self.target})", None, res.name)
        return None if problems else parsed

    def _canonical(self, sql: str, parsed: ParsedSql) -> str:
        """SQL in the canonical dialect (kept as written when that is the project's dialect)."""
        return sql if self.dialect == DIALECT else parsed.tree.sql(dialect=DIALECT)

    def _render(self, res: Resource, seen: dict[str, tuple[str, int | None]]) -> Rendered | None:
        r = self.renderer
        assert r is not None
        try:
            out = r.rendered(res.name)
        except RenderFailure as failure:
            self.add(failure.file.split("#")[0], failure.message, failure.line, res.name)
            return None
        except DbtRenderError as exc:
            self.add(_file(res), str(exc), None, res.name)
            return None
        if out.config.get("enabled") is False:  # disabled in its own config() call
            seen.pop(res.name.lower(), None)
            r.refs.pop(res.name.lower(), None)
            return None
        problems = []
        if res.kind != "model" and out.config.get("alias") not in (None, res.name):
            problems.append(f"alias is not supported on a {res.kind}: it is published under its own name")
        hooked = _listed(out.config.get("pre-hook")) or _listed(out.config.get("post-hook"))
        if hooked and (res.kind == "snapshot" or out.config.get("materialized") == "incremental"):
            problems.append(
                "pre-hook/post-hook on an incremental model or a snapshot are not supported (they would run "
                "on one segment); move them to a table or a view"
            )
        if out.config.get("sql_header"):
            problems.append("sql_header is not supported")
        for problem in problems:
            self.add(_file(res), problem, None, res.name)
        return None if problems else out

    def _model(self, res: Resource, seen: dict[str, tuple[str, int | None]]) -> None:
        out = self._render(res, seen)
        if out is None:
            return
        cfg = out.config
        materialized = str(cfg.get("materialized", "view"))
        if materialized not in _MATERIALIZED:
            self.add(
                res.file,
                f"materialized {materialized!r} is not supported (table, view, ephemeral, incremental)",
                None,
                res.name,
            )
            return
        sql = out.sql
        if out.late is not None:  # it queries the warehouse: rendered when its build runs
            if materialized not in ("table", "view"):
                self.add(
                    res.file,
                    f"a {materialized} model that queries the warehouse while rendering (run_query on a "
                    "table) is not supported: make it a table or a view",
                    None,
                    res.name,
                )
                return
            sql = stand_in(out.late, tuple(n for n in out.refs if n.lower() != res.name.lower()))
        parsed = self._sql(res, sql, self.renderer.texts[res.file] if self.renderer else "")
        if parsed is None:
            return
        incremental = self._incremental(res, cfg) if materialized == "incremental" else None
        if materialized == "incremental" and incremental is None:
            return
        entry = self.props["models"].get(res.name.lower())
        columns = self._declared_columns(res, entry, cfg)
        name = self._aliased(res, cfg, seen)
        hooks = self._hooks(res, cfg)
        if name is None or hooks is None:
            return
        if hooks.drops_this:
            self._dropped_by_its_hook(name, entry)
            return
        self.nodes[name] = Node(
            name=name,
            kind="sql",
            file=res.file,
            line=1,
            deps=tuple(sorted(parsed.references)),
            description=_text(entry.data.get("description")) if entry else None,
            tags=tuple(str(t) for t in _listed(cfg.get("tags"))),
            owner=_owner(cfg, entry),
            columns=columns,
            sql=self._canonical(sql, parsed),
            incremental=incremental,
            materialized="table" if incremental else materialized,
            pre_hooks=hooks[0],
            post_hooks=hooks[1],
        )
        if entry is not None:
            self._test_targets.append((name, entry, res.fqn[1:-1]))

    def _python_model(
        self, path: str, rel: str, package: DbtPackage, seen: dict[str, tuple[str, int | None]]
    ) -> None:
        """A dbt Python model -> our Python node, called with dbt-duckdb's contract when it builds."""
        from gitops_data.project.dbt.python_models import DBT_FUNCTION, DbtPythonError, read_python_model

        r = self.renderer
        assert r is not None
        name = posixpath.splitext(posixpath.basename(rel))[0]
        parts = tuple(posixpath.dirname(rel).split("/")) if "/" in rel else ()
        entry = self.props["models"].get(name.lower())
        cfg = self._config("models", (*parts, name), entry, package)
        if cfg.get("enabled") is False:
            r.disabled.add(name.lower())
            r.refs.pop(name.lower(), None)
            return
        text = self._read(path, name)
        if text is None or not self._declare(seen, name, path, 1):
            return
        try:
            model = read_python_model(text)
        except DbtPythonError as exc:
            self.add(path, str(exc), exc.line, name)
            return
        cfg = merge_config(cfg, model.config)
        if cfg.get("enabled") is False:
            seen.pop(name.lower(), None)
            r.refs.pop(name.lower(), None)
            return
        if str(cfg.get("materialized", "table")) != "table":
            self.add(path, "a dbt Python model is a table here (materialized: table)", 1, name)
            return
        deps = []
        for ref in model.refs:
            target = r.refs.get(ref[-1].lower())
            if target is None:
                self.add(
                    path, f"dbt.ref({ref[-1]!r}): no model, seed or snapshot named {ref[-1]!r}", None, name
                )
                return
            if target.name != ref[-1]:
                self.add(
                    path,
                    f"dbt.ref({ref[-1]!r}) names a model published as {target.name!r} (an alias): ref that",
                    None,
                    name,
                )
                return
            deps.append(target.name)
        for source, table in model.sources:
            found = r.sources.get((source.lower(), table.lower()))
            if found is None:
                self.add(
                    path, f"dbt.source({source!r}, {table!r}) is not declared under `sources:`", None, name
                )
                return
            deps.append(found.name)
        self.nodes[name] = Node(
            name=name,
            kind="python",
            file=path,
            line=1,
            deps=tuple(sorted(set(deps))),
            description=_text(entry.data.get("description")) if entry else None,
            tags=tuple(str(t) for t in _listed(cfg.get("tags"))),
            owner=_owner(cfg, entry),
            columns=self._declared_columns(Resource(name, "model", path, package.name, (), cfg), entry, cfg),
            python_file=path,
            python_function=DBT_FUNCTION,
            python_source=text,
        )
        if entry is not None:
            self._test_targets.append((name, entry, parts))

    def _aliased(
        self, res: Resource, cfg: dict[str, Any], seen: dict[str, tuple[str, int | None]]
    ) -> str | None:
        """The name a model is published under: its alias when it has one (dbt's `alias` config)."""
        alias = cfg.get("alias")
        if alias is None or str(alias) == res.name:
            problem = identifier_problem(res.name, self.max_identifier)
            if problem:
                self.add(res.file, f"name {res.name!r} {problem}", 1, res.name)
                return None
            return res.name
        alias = str(alias)
        seen.pop(res.name.lower(), None)
        if not self._declare(seen, alias, res.file, 1):
            return None
        return alias

    def _declared_columns(
        self, res: Resource, entry: _Entry | None, cfg: dict[str, Any]
    ) -> dict[str, ColumnSpec]:
        """Descriptions, and the declared types of an enforced contract (checked on every build)."""
        out: dict[str, ColumnSpec] = {}
        if entry is None:
            return out
        enforced = isinstance(cfg.get("contract"), dict) and cfg["contract"].get("enforced") is True
        for col in _entries(entry.data.get("columns")):
            if not isinstance(col, dict) or not isinstance(col.get("name"), str):
                continue
            type_ = None
            if enforced and col.get("data_type"):
                type_ = canonical_type(str(col["data_type"]))
                if type_ is None:
                    self.add(
                        entry.file,
                        f"columns.{col['name']}.data_type: {col['data_type']!r} is not a DuckDB type",
                        getattr(col, "line", None),
                        res.name,
                    )
            out[col["name"]] = ColumnSpec(description=_text(col.get("description")), type=type_)
        return out

    def _incremental(self, res: Resource, cfg: dict[str, Any]) -> IncrementalSpec | None:
        """Our incremental spec for a dbt incremental model (None: reported why not)."""
        r = self.renderer
        assert r is not None
        strategy = cfg.get("incremental_strategy")
        if strategy not in _STRATEGIES:
            self.add(
                res.file,
                f"incremental_strategy {strategy!r} is not supported (append, merge, delete+insert)",
                None,
                res.name,
            )
            return None
        column = cfg.get("incremental_column")
        if column is None:
            try:
                found = watched_columns(r.render(res, incremental=True).sql, res.name, self.dialect)
            except RenderFailure as failure:
                self.add(
                    failure.file,
                    f"rendered with is_incremental() true: {failure.message}",
                    failure.line,
                    res.name,
                )
                return None
            if len(found) != 1:
                self.add(
                    res.file,
                    "incremental model: cannot tell which column marks new rows"
                    + (f" (its filters watch {', '.join(sorted(found))})" if found else "")
                    + "; filter `{% if is_incremental() %} where c > (select max(c) from {{ this }}) "
                    "{% endif %}` "
                    "or set config(incremental_column='c')",
                    None,
                    res.name,
                )
                return None
            column = found.pop()
        try:
            return IncrementalSpec(
                column=str(column),
                unique_key=_listed(cfg.get("unique_key")),
                forward_only=cfg.get("full_refresh") is False,
                lookback=cfg.get("incremental_lookback"),
            )
        except ValidationError as exc:
            for err in exc.errors():
                self.add(res.file, f"incremental: {err['msg'].removeprefix('Value error, ')}", None, res.name)
            return None

    def _snapshot(self, res: Resource, seen: dict[str, tuple[str, int | None]]) -> None:
        out = self._render(res, seen)
        if out is None:
            return
        cfg = out.config
        file = _file(res)
        history, view = f"{res.name}__history", res.name
        parsed = self._sql(res, out.sql, "")
        if parsed is None:
            return
        sql = self._canonical(out.sql, parsed)
        strategy = cfg.get("strategy")
        problems = []
        if strategy not in ("timestamp", "check"):
            problems.append(f"snapshot strategy {strategy!r} is not supported (timestamp or check)")
        keys = [str(k) for k in _listed(cfg.get("unique_key"))]
        if not keys or any(identifier_problem(k) for k in keys):
            problems.append("snapshot unique_key must be a column (or a list of columns), not an expression")
        hard = str(
            cfg.get("hard_deletes") or ("invalidate" if cfg.get("invalidate_hard_deletes") else "ignore")
        )
        if hard not in ("ignore", "invalidate"):
            problems.append(f"hard_deletes {hard!r} is not supported (ignore or invalidate)")
        check_cols = cfg.get("check_cols")
        if strategy == "check" and check_cols != "all" and not isinstance(check_cols, list):
            problems.append("strategy check needs check_cols: a list of columns, or 'all'")
        for problem in problems:
            self.add(file, problem, None, res.name)
        if problems:
            return
        source = _plain_source(parsed)
        if source is None:
            source = f"{res.name}__input"
            if not self._declare(seen, source, file, None):
                return
            self.nodes[source] = Node(
                name=source,
                kind="sql",
                file=file,
                line=None,
                deps=tuple(sorted(parsed.references)),
                sql=sql,
                materialized="view",
                description=f"the query of snapshot {res.name}",
            )
        if not self._declare(seen, history, file, None):
            return
        try:
            spec = SnapshotSpec(
                name=history,
                source=source,
                unique_key=keys,
                strategy="timestamp" if strategy == "timestamp" else "check",  # checked above
                updated_at=cfg.get("updated_at") if strategy == "timestamp" else None,
                check_cols=check_cols if isinstance(check_cols, list) else None,
                invalidate_hard_deletes=hard == "invalidate",
            )
        except ValidationError as exc:
            for err in exc.errors():
                self.add(file, f"snapshot: {err['msg'].removeprefix('Value error, ')}", None, res.name)
            return
        self.nodes[history] = Node(
            name=history,
            kind="snapshot",
            file=file,
            line=None,
            deps=(source,),
            snapshot=spec,
            description=f"SCD-2 history of snapshot {res.name}",
        )
        view_sql = _snapshot_view(history, spec, cfg)
        try:
            parse_query(view_sql)
        except SqlError as exc:
            self.add(file, f"snapshot columns: {exc} (dbt_valid_to_current?)", None, res.name)
            return
        self.nodes[view] = Node(
            name=view,
            kind="sql",
            file=file,
            line=None,
            deps=(history,),
            sql=view_sql,
            materialized="view",
            tags=tuple(str(t) for t in _listed(cfg.get("tags"))),
            description=_text(self.props["snapshots"][view.lower()].data.get("description"))
            if view.lower() in self.props["snapshots"]
            else None,
        )
        entry = self.props["snapshots"].get(view.lower())
        if entry is not None:
            self._test_targets.append((view, entry, res.fqn[1:-1]))

    # --- tests --------------------------------------------------------------------------------

    def _tests(self) -> None:
        """The generic tests of every node's properties, mapped onto its checks."""
        r, root = self.renderer, self.root
        assert r is not None and root is not None
        for name, entry, parts in self._test_targets:
            node = self.nodes.get(name)
            if node is None:
                continue
            base = {
                k: v
                for k, v in self._config("data_tests", parts, None, entry.package).items()
                if k in _TEST_CONFIGS
            }
            specs: list[TestSpec] = []
            errors: list[TestMappingError] = []
            data = entry.data
            try:
                specs += read_tests(data.get("data_tests", data.get("tests")), None, entry.line, base)
                for col in _entries(data.get("columns")):
                    if isinstance(col, LineDict) and isinstance(col.get("name"), str):
                        specs += read_tests(
                            col.get("data_tests", col.get("tests")), col["name"], col.line, base
                        )
            except TestMappingError as exc:
                errors.append(exc)
            specs = [self._rendered_spec(spec, entry.file) for spec in specs]
            owner = (entry.package or root).name
            resource = Resource(f"test_{name}", "test", entry.file, owner, (owner, "test", name), {})

            def relation(text: str, line: int | None, resource: Resource = resource) -> str:
                try:
                    return r.relation_of(resource, text, line).name
                except RenderFailure as failure:
                    raise TestMappingError(failure.message, failure.line) from None

            def render(
                spec: TestSpec, where: str | None, resource: Resource = resource, node: Node = node
            ) -> tuple[str, dict[str, Any]]:
                text = f"(select * from {quote(node.name)} where {where}) as dbt_subquery" if where else None
                kwargs: dict[str, Any] = {"model": Relation(node.name, text=text), **spec.args}
                if spec.column is not None:
                    kwargs["column_name"] = spec.column
                try:
                    out = r.render_test(resource, spec.test, kwargs, spec.line)
                    if out.late is not None:  # it queries the warehouse: rendered when the check runs
                        return stand_in(out.late, (node.name, *out.refs), where_false=True), out.config
                    return out.sql, out.config
                except RenderFailure as failure:
                    raise TestMappingError(failure.message, failure.line) from None

            queries = node.ephemeral or node.kind == "table"
            mapped = map_tests(specs, node.name, relation, render, errors, queries_only=queries)
            for problem in errors:
                self.add(entry.file, str(problem), problem.line, name)
            if node.ephemeral:
                self._attach_inlined(node, entry.file, entry.line, mapped.checks)
                continue
            if node.kind == "table":
                self._attach_to_readers(node, entry.file, entry.line, mapped.checks)
                continue
            self._attach(node, entry.file, entry.line, mapped.columns, mapped.checks)

    def _attach_to_readers(
        self, node: Node, file: str, line: int | None, checks: list[dict[str, Any]]
    ) -> None:
        """The tests of a source that is an external table (no build of its own): checks of every
        built model that reads it, so a failure blocks them, as `dbt build` skips them."""
        if not checks:
            return
        readers = sorted(n for n, other in self.nodes.items() if node.name in other.deps and other.built)
        if not readers:
            self.add(
                file,
                f"the tests of source {node.name} (an external table) run with the models that read it, "
                "and none does",
                line,
                node.name,
            )
            return
        for reader in readers:
            named = [{**c, "name": f"{node.name}__{c['name']}"} for c in checks]
            self._attach(self.nodes[reader], file, line, {}, named)

    def _attach_inlined(self, node: Node, file: str, line: int | None, checks: list[dict[str, Any]]) -> None:
        """The tests of an ephemeral model, run on its inlined query: each query with the ephemeral
        models it reads swapped for their own queries, a check of the first built model it reads."""
        from gitops_data.sql import rewrite

        for check in checks:
            sql = check["args"]["sql"]
            try:
                for _ in range(len(self.nodes)):
                    parsed = parse_query(sql, self.dialect)
                    inline = {
                        r.lower(): f"({self.nodes[r].sql})"
                        for r in parsed.references
                        if r in self.nodes and self.nodes[r].ephemeral
                    }
                    if not inline:
                        break
                    sql = rewrite(parsed, inline, DIALECT)
                reads = sorted(
                    r for r in parse_query(sql).references if r in self.nodes and self.nodes[r].built
                )
            except SqlError as exc:
                self.add(file, f"test of ephemeral model {node.name}: {exc}", line, node.name)
                continue
            if not reads:
                self.add(
                    file,
                    f"a test of ephemeral model {node.name} needs a built model under it to run with",
                    line,
                    node.name,
                )
                continue
            name = f"{node.name}__{check['name']}"
            inlined = {**check, "name": name, "args": {**check["args"], "sql": sql}}
            self._attach(self.nodes[reads[0]], file, line, {}, [inlined])

    def _unit_tests(self) -> None:
        """dbt unit tests (`unit_tests:` with given/expect), run on their fixtures by an in-memory
        DuckDB while loading: a failure is a validate error at the unit test's file and line."""
        from gitops_data.project.dbt.unit_tests import UnitTestError, fixture_of, run_unit_test

        r = self.renderer
        assert r is not None
        for entry in self.unit_tests:
            data, name = entry.data, entry.data.get("name")
            model = str(data.get("model") or "")
            where = f"unit test {name!r} of {model!r}"
            if _dict(data.get("config")).get("enabled") is False or model.lower() in r.disabled:
                continue
            target = r.refs.get(model.lower())
            res = r.resources.get(model.lower())
            node = self.nodes.get(target.name) if target else None
            if target is None or res is None:
                self.add(entry.file, f"{where}: no model named {model!r}", entry.line, model or None)
                continue
            if node is None:
                continue  # the model failed to load: reported there
            try:
                fixtures = self._fixture_reader(res)
                overrides = _dict(data.get("overrides"))
                if overrides.get("env_vars"):
                    raise UnitTestError("overrides.env_vars is not supported")
                macros = _dict(overrides.get("macros"))
                incremental = bool(macros.get("is_incremental"))
                given_overrides = {"vars": _dict(overrides.get("vars")), "macros": macros}
                sql: Any = node.sql or ""
                if macros or overrides.get("vars") or key_of(node.sql) is not None:
                    sql = self._unit_render(res, incremental, given_overrides)
                elif self.dialect != "duckdb":
                    sql = parse_query(sql, self.dialect).tree.sql(dialect="duckdb")
                inputs = {}
                for given in _entries(data.get("given")):
                    if not isinstance(given, dict) or not isinstance(given.get("input"), str):
                        raise UnitTestError("each `given` needs an `input:` (ref(...), source(...) or this)")
                    text = given["input"].strip()
                    relation = node.name if text == "this" else r.relation_of(res, text, entry.line).name
                    try:
                        known = [c.column for c in r.columns_of(relation)]
                    except DbtRenderError:
                        known = None
                    inputs[relation] = (fixture_of(dict(given), fixtures), known)
                expect = data.get("expect")
                if not isinstance(expect, dict):
                    raise UnitTestError("`expect:` must be a mapping with `rows:`")
                problem = run_unit_test(sql, inputs, fixture_of(dict(expect), fixtures))
            except (UnitTestError, RenderFailure, DbtRenderError, SqlError) as exc:
                self.add(entry.file, f"{where}: {getattr(exc, 'message', exc)}", entry.line, model)
                continue
            if problem is not None:
                self.add(entry.file, f"{where} fails: {problem}", entry.line, model)

    def _fixture_reader(self, res: Resource) -> Any:
        """Reads a unit test's fixture file (`fixture: name`): `<test-path>/fixtures/<name>.csv` or
        `.sql` (rendered, as dbt renders it)."""
        from gitops_data.project.dbt.unit_tests import UnitTestError

        r, root = self.renderer, self.root
        assert r is not None and root is not None

        def read(name: str, fmt: str) -> str:
            suffix = ".sql" if fmt == "sql" else ".csv"
            found = [
                f
                for f, rel in self._files(root.folders("test"), (suffix,))
                if rel.startswith("fixtures/") and posixpath.basename(rel) == name + suffix
            ]
            if not found:
                raise UnitTestError(
                    f"fixture {name!r}: no {'/'.join(root.test_paths)}/fixtures/{name}{suffix}"
                )
            text = self._read(found[0]) or ""
            if fmt == "sql":
                try:
                    return r.render_hook(res, text, res.name)
                except RenderFailure as failure:
                    raise UnitTestError(f"fixture {found[0]}: {failure.message}") from None
            return text

        return read

    def _unit_render(self, res: Resource, incremental: bool, overrides: dict[str, Any]) -> Any:
        """A unit test's model rendered with its overrides: SQL, or, for a model that queries the
        warehouse while rendering, a render to run over the fixtures."""
        r = self.renderer
        assert r is not None

        def duckdb_sql(sql: str) -> str:
            return (
                sql if self.dialect == "duckdb" else parse_query(sql, self.dialect).tree.sql(dialect="duckdb")
            )

        try:
            return duckdb_sql(r.render(res, incremental=incremental, overrides=overrides).sql)
        except RenderFailure as failure:
            if not failure.late:
                raise

        def late(run: Any) -> str:
            try:
                return duckdb_sql(r.render(res, incremental=incremental, run=run, overrides=overrides).sql)
            except RenderFailure as failure:
                raise LateRenderError(failure.message) from None

        return late

    def _rendered_spec(self, spec: TestSpec, file: str) -> TestSpec:
        """A test with the Jinja in its arguments and configs rendered, as dbt renders them."""
        return dataclasses.replace(
            spec,
            args=self._value(spec.args, file, spec.line),
            config=self._value(spec.config, file, spec.line),
        )

    def _attach(
        self,
        node: Node,
        file: str,
        line: int | None,
        columns: dict[str, dict[str, Any]],
        checks: list[dict[str, Any]],
    ) -> None:
        """Add column settings and model checks (YAML form) to `node`, validated."""
        new_columns = dict(node.columns)
        for col, values in columns.items():
            base = new_columns.get(col, ColumnSpec()).model_dump(exclude_defaults=True)
            extra = dict(values)
            extra["checks"] = [*base.get("checks", []), *extra.get("checks", [])]
            try:
                new_columns[col] = ColumnSpec.model_validate({**base, **extra})
            except ValidationError as exc:
                self.add(file, f"column {col}: {exc.errors()[0]['msg']}", line, node.name)
        new_checks = list(node.checks)
        for check in checks:
            if check.get("kind") == "returns_no_rows":
                args = dict(check["args"])
                sql = self._check_sql(node, file, line, args["sql"])
                if sql is None:
                    continue
                args["sql"] = sql
                if "store_failures" in args:  # the failing rows it keeps: canonical too
                    rows = self._check_sql(node, file, line, args["store_failures"]["sql"])
                    if rows is None:
                        continue
                    args["store_failures"] = {**args["store_failures"], "sql": rows}
                check = {**check, "args": args}
            try:
                new_checks.append(ModelCheck.model_validate(check))
            except ValidationError as exc:
                self.add(
                    file, f"test: {exc.errors()[0]['msg'].removeprefix('Value error, ')}", line, node.name
                )
        self.nodes[node.name] = dataclasses.replace(node, columns=new_columns, checks=tuple(new_checks))

    def _check_sql(self, node: Node, file: str, line: int | None, sql: str) -> str | None:
        """A test's query in canonical form (its formatting and comments do not change the check)."""
        try:
            return parse_query(sql, self.dialect).canonical
        except SqlError as exc:
            self.add(file, f"test query: {exc}", line, node.name)
            return None

    def _singular_tests(self, root: DbtPackage) -> list[Resource]:
        r = self.renderer
        assert r is not None
        out = []
        for path, rel in self._files(root.folders("test"), (".sql",)):
            if "generic/" in rel or rel.startswith("fixtures/"):  # generic tests; unit-test fixtures
                continue
            text = self._read(path)
            if text is None:
                continue
            name = posixpath.splitext(posixpath.basename(rel))[0]
            parts = tuple(posixpath.dirname(rel).split("/")) if "/" in rel else ()
            cfg = self._config("data_tests", (*parts, name), None, root)
            res = Resource(name, "test", path, root.name, (root.name, *parts, name), cfg)
            r.texts[path] = text
            out.append(res)
        return out

    def _singular(self, res: Resource) -> None:
        """A singular test -> a `returns_no_rows` check of the first model it refs that has a table."""
        r = self.renderer
        assert r is not None
        try:
            try:
                out = r.render(res)
            except RenderFailure as failure:
                if not failure.late:
                    raise
                out = r.render_late(res, failure)  # it queries the warehouse: rendered when it runs
        except RenderFailure as failure:
            self.add(failure.file, failure.message, failure.line)
            return
        if out.config.get("enabled") is False:
            return
        if out.late is not None:
            out = dataclasses.replace(out, sql=stand_in(out.late, out.refs, where_false=True))
        if any(n not in self.nodes for n in out.refs):
            return  # a node it refs failed to load: reported there
        built = [n for n in out.refs if self.nodes[n].built]
        if not out.refs:
            # it reads no model: its result depends on its query alone, so it runs with one model's
            # build (the first by name), which re-runs it only when its query changes
            built = sorted((n for n, node in self.nodes.items() if node.built), key=str.lower)[:1]
            if not built:
                self.add(res.file, "a singular test that refs no model needs a model to run with")
                return
        try:
            check_config(out.config, None)
            severity = severity_of(out.config, None)
            stored = stored_as(out.config, None)
        except TestMappingError as exc:
            self.add(res.file, str(exc))
            return
        owner = self.nodes[(built or list(out.refs))[0]]
        checks = query_checks(out.sql, out.config, res.file, severity, res.name, stored)
        self._attach(owner, res.file, None, {}, checks)


_HOOKS = ("pre-hook", "post-hook")


class _Hooks(NamedTuple):
    """A node's rendered hooks, and whether a post-hook drops the node's own relation."""

    pre: tuple[str, ...]
    post: tuple[str, ...]
    drops_this: bool


def _without_hooks(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in _HOOKS}


def _hook_list(value: Any) -> list[str]:
    """dbt's hook config: a statement, a {sql: ...} mapping, or a list of them."""
    out = []
    for hook in _listed(value):
        text = hook.get("sql") if isinstance(hook, dict) else hook
        if isinstance(text, str) and text.strip():
            out.append(text)
    return out


def _file(res: Resource) -> str:
    return res.file.split("#")[0]


def _owner(cfg: dict[str, Any], entry: _Entry | None) -> str | None:
    meta = {**(_dict(entry.data.get("meta")) if entry else {}), **_dict(cfg.get("meta"))}
    owner = meta.get("owner")
    return str(owner) if owner else None


def _plain_source(parsed: ParsedSql) -> str | None:
    """X when the query is exactly `select * from X`."""
    from sqlglot import exp

    tree = parsed.tree
    if not isinstance(tree, exp.Select) or {k for k, v in tree.args.items() if v} != {"expressions", "from_"}:
        return None
    star = tree.expressions[0] if len(tree.expressions) == 1 else None
    source = tree.args["from_"].this
    if (
        not isinstance(star, exp.Star)
        or any(star.args.get(k) for k in star.args)
        or not isinstance(source, exp.Table)
        or source.args.get("alias")
    ):
        return None
    return source.name


def _snapshot_view(history: str, spec: SnapshotSpec, cfg: dict[str, Any]) -> str:
    """dbt's snapshot columns over our SCD-2 history: dbt_scd_id, dbt_updated_at, dbt_valid_from,
    dbt_valid_to (or the names in snapshot_meta_column_names)."""
    scd_id, updated_at, valid_from, valid_to = snapshot_columns(cfg)
    changed = quote(spec.updated_at) if spec.strategy == "timestamp" and spec.updated_at else "valid_from"
    hashed = " || '|' || ".join(
        f"coalesce(cast({c} as varchar), '')" for c in [*map(quote, spec.unique_key), changed]
    )
    current = cfg.get("dbt_valid_to_current")
    to = f"coalesce(valid_to, {current})" if current else "valid_to"
    return (
        f"select *, md5({hashed}) as {quote(scd_id)}, {changed} as {quote(updated_at)}, "
        f"valid_from as {quote(valid_from)}, {to} as {quote(valid_to)} from {quote(history)}"
    )
