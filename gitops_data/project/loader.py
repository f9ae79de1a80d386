"""Load and validate a project from a FileTree: the settings, then each front-end's nodes (gitops-data
YAML, a dbt project), then the validation they share (references, cycles, what checks and schedules
name). Collects *every* issue before failing."""

from __future__ import annotations

import contextlib
import difflib
import gc
from collections.abc import Callable, Iterator, Mapping

from gitops_data.errors import ProjectError
from gitops_data.naming import identifier_problem
from gitops_data.project.cache import PROJECTS
from gitops_data.project.checks import check_reads
from gitops_data.project.collector import Collector
from gitops_data.project.columns import BuiltColumns, analyse
from gitops_data.project.nodes import Node, Project
from gitops_data.project.schema import SECTIONS, SETTINGS_FILE, AlertSpec, ScheduleSpec, Settings
from gitops_data.project.tree import FileTree
from gitops_data.project.yaml.loader import materialize, yaml_entries, yaml_node
from gitops_data.project.yaml_lines import YamlSyntaxError, line_of, parse_yaml
from gitops_data.sql import DIALECT


def _load_settings(c: Collector) -> Settings:
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


def _order(c: Collector, nodes: dict[str, Node], declared: set[str]) -> dict[str, Node]:
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

    def visit(start: str) -> None:
        """Depth-first, iteratively (a chain of thousands of models must not hit Python's recursion limit)."""
        stack: list[str] = [start]
        pending = [iter(resolved[start].deps)]
        state[start] = 1
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                pending.pop()
                done = stack.pop()
                state[done] = 2
                order.append(done)
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    node = resolved[dep]
                    c.add(node.file, "dependency cycle: " + " -> ".join(cycle), node.line, dep)
            elif state.get(dep) is None:
                state[dep] = 1
                stack.append(dep)
                pending.append(iter(resolved[dep].deps))

    for name in sorted(resolved):
        if name not in state:
            visit(name)
    return {name: resolved[name] for name in order}


def read_settings(tree: FileTree) -> Settings:
    """Only the settings (defaults where they cannot be read): enough to name an invalid project's env."""
    return _load_settings(Collector(tree))


# The last build's columns of some models (names in build order), as the project's settings find them.
LastBuilt = Callable[[Settings, list[str]], Mapping[str, BuiltColumns]]


def load_project(tree: FileTree, target: str = DIALECT, last_built: LastBuilt | None = None) -> Project:
    """Load and validate the project in `tree` for a warehouse speaking `target` (a sqlglot
    dialect); raise ProjectError listing every issue. A tree of the same content as one loaded
    before in this process gives that load's result (project/cache.py). `last_built` (validate's):
    asked for the models whose columns nothing static says, its answer stands in for them (such a
    load depends on the warehouse: it is not cached)."""
    with _no_gc_pauses():
        if last_built is not None:
            return _load(tree, target, last_built)
        return PROJECTS.load(tree, target, _load)


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Without the cyclic garbage collector: a load makes hundreds of thousands of objects (syntax
    trees, YAML), nearly all kept, which it would traverse again and again (a fifth of a cold load)."""
    if not gc.isenabled():  # disabled by the caller, or by a load in another thread: theirs to enable
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _load(tree: FileTree, target: str, last_built: LastBuilt | None = None) -> Project:
    c = Collector(tree)
    settings = _load_settings(c)
    nodes: dict[str, Node] = {}
    seen: dict[str, tuple[str, int | None]] = {}
    schedules: list[ScheduleSpec] = []
    alerts: list[AlertSpec] = []
    where: dict[str, tuple[str, int]] = {}
    dbt = None
    if settings.dbt_project is not None or tree.exists("dbt_project.yml"):
        from gitops_data.project.dbt import DbtLoader

        dbt = DbtLoader.open(c, settings, target)  # its files are dbt's, not gitops-data YAML
        settings = dbt.settings
    entries, file_defaults = yaml_entries(c, dbt.yaml_settings if dbt else settings, dbt is not None)
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
        node = yaml_node(c, section, file, raw, (settings.dialect, target))
        if node is not None and node.kind == "sql" and node.incremental is None:
            node = materialize(c, node, raw, file_defaults.get(file), settings)
        if node is not None:
            nodes[node.name] = node
    from_dbt: dict[str, Node] = dbt.load(seen, set(nodes)) if dbt is not None else {}
    nodes.update(from_dbt)
    ordered = _order(c, nodes, set(seen))
    before = len(c.issues)
    columns = analyse(c, ordered, lenient=frozenset(from_dbt))
    if last_built is not None and columns.unknown:
        built = last_built(settings, columns.unknown)
        if built:  # the analysis again, with those columns: its findings replace the first run's
            del c.issues[before:]
            columns = analyse(c, ordered, frozenset(from_dbt), built)
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
        settings=settings,
        nodes=ordered,
        schedules=tuple(schedules),
        alerts=tuple(alerts),
        commit=tree.commit,
        columns=columns,
    )
