"""A loaded, validated project: its nodes with resolved bodies and dependencies, in build order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gitops_data.project.columns import ProjectColumns
from gitops_data.project.schema import (
    AlertSpec,
    ColumnSpec,
    IncrementalSpec,
    ModelCheck,
    ScheduleSpec,
    Settings,
    SnapshotSpec,
)

NodeKind = Literal["sql", "python", "seed", "source", "table", "snapshot"]


THIS_TOKEN = "__gitops_data_this__"  # a hook's `this`: the build being written


@dataclass(frozen=True)
class Node:
    """One dataset of the project. `table` nodes are external tables (never built, only read)."""

    name: str
    kind: NodeKind
    file: str
    line: int | None
    deps: tuple[str, ...] = ()
    description: str | None = None
    tags: tuple[str, ...] = ()
    owner: str | None = None
    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    checks: tuple[ModelCheck, ...] = ()
    sql: str | None = None  # kind sql: the query text
    python_file: str | None = None  # kind python: file and function
    python_function: str | None = None
    python_source: str | None = None
    data_path: str | None = None  # kind seed/source: file in the repo
    data_format: str | None = None
    content_digest: str | None = None  # seed/source file content hash (git blob id)
    table: str | None = None  # kind table: the external table's name
    incremental: IncrementalSpec | None = None  # kind sql: appends segments instead of rebuilding
    snapshot: SnapshotSpec | None = None  # kind snapshot: SCD-2 history of deps[0]
    materialized: str = "table"  # table | view | ephemeral (SQL models); every other kind: table
    # dbt hooks: statements run in the build's transaction before / after it is written; THIS_TOKEN
    # in them stands for the build's own table
    pre_hooks: tuple[str, ...] = ()
    post_hooks: tuple[str, ...] = ()
    # where findings point: the file holding the SQL and the file line of its first line (None: the
    # SQL is rendered, its lines are not the file's); YAML key -> line ("columns.<col>", "checks.<i>")
    sql_at: tuple[str, int] | None = None
    key_lines: dict[str, int] = field(default_factory=dict)

    @property
    def built(self) -> bool:
        """Whether a build of this node is an object (table or view) in the internal schema."""
        return self.kind != "table" and self.materialized != "ephemeral"

    @property
    def ephemeral(self) -> bool:
        """Inlined into its downstream models' SQL: no build, no view."""
        return self.materialized == "ephemeral"

    @property
    def segmented(self) -> bool:
        """Whether a build is a list of immutable segments (incremental models and snapshots)."""
        return self.incremental is not None or self.snapshot is not None

    @property
    def declared_types(self) -> dict[str, str]:
        return {c: spec.type for c, spec in self.columns.items() if spec.type}


@dataclass(frozen=True)
class Project:
    """The YAML tree at one commit, validated. `nodes` is in dependency (build) order."""

    settings: Settings
    nodes: dict[str, Node]
    schedules: tuple[ScheduleSpec, ...] = ()
    alerts: tuple[AlertSpec, ...] = ()
    commit: str | None = None
    columns: ProjectColumns = field(default_factory=ProjectColumns)  # the static column analysis

    def downstream(self, names: set[str]) -> set[str]:
        """`names` and everything that depends on them, transitively."""
        out = set(names)
        for node in self.nodes.values():  # build order: upstreams come first
            if any(d in out for d in node.deps):
                out.add(node.name)
        return out

    def physical_deps(self, name: str) -> tuple[str, ...]:
        """The upstreams `name` reads objects of: its deps, each ephemeral one replaced by its own."""
        out: list[str] = []
        for dep in self.nodes[name].deps:
            for d in self.physical_deps(dep) if self.nodes[dep].ephemeral else (dep,):
                if d not in out:
                    out.append(d)
        return tuple(out)

    def select(self, selectors: list[str]) -> list[str]:
        """Node names matched by `name` or `tag:<tag>` selectors (all built nodes when empty)."""
        if not selectors:
            return [n for n, node in self.nodes.items() if node.built]
        out = []
        for name, node in self.nodes.items():
            for sel in selectors:
                if (sel.startswith("tag:") and sel[4:] in node.tags) or sel == name:
                    out.append(name)
                    break
        return out
