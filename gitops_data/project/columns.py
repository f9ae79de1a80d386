"""Static column analysis: every model's output columns (and, where the SQL says so, their types),
from its SQL and what it reads, without a warehouse.

Inputs are, in dependency order: the CSV header of seeds and file sources, the declared `columns:`
of sources, seeds and Python models (there: the columns a frame *has at least*), and the inferred
outputs of upstream SQL models. What cannot be known (a Python model or an external table without
`columns:`, a dbt model rendered at build time, a query sqlglot cannot follow) is UNKNOWN: never
guessed, and a model reading it gets one note, not an error. Where the caller passes the columns of
such a model's last build (`BuiltColumns`, read from the catalog by the caller), those stand in,
lowest in priority, and every finding that rests on them says so.

`analyse` returns each model's columns with their lineage (the upstream model.columns each is
computed from) and reports, through the Collector, a column a query reads that its inputs do not
have, an ambiguous column, a `columns:` or check entry that names no output column and a declared
type the query cannot produce.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.scope import Scope, build_scope

from gitops_data.errors import GitopsError, Issue, SqlError
from gitops_data.project.collector import Collector
from gitops_data.sql import DIALECT, parse_query

if TYPE_CHECKING:
    from gitops_data.project.nodes import Node

Source = tuple[str, str]  # (model, column) an output column is computed from
Lineage = tuple[tuple[str, tuple[Source, ...]], ...]  # (column, its sources) per output column


@dataclass(frozen=True)
class Column:
    """One output column: its name as the warehouse spells it, its type when the SQL fixes it
    (canonical DuckDB rendering), and the upstream model columns it is computed from."""

    name: str
    type: str | None = None
    sources: frozenset[Source] = frozenset()


@dataclass(frozen=True)
class Relation:
    """The columns of a table-like thing. `complete` False: it may have more columns than these
    (nothing read of it that is not listed here is an error)."""

    columns: tuple[Column, ...] = ()
    complete: bool = False
    built_from: frozenset[str] = frozenset()  # models whose columns here are their last build's

    def get(self, name: str) -> Column | None:
        return self._index.get(name.lower())

    @functools.cached_property
    def _index(self) -> dict[str, Column]:
        out: dict[str, Column] = {}
        for c in self.columns:
            out.setdefault(c.name.lower(), c)
        return out

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


UNKNOWN = Relation()


@dataclass(frozen=True)
class BuiltColumns:
    """The columns a model's last recorded build had (lower in priority than anything static)."""

    names: tuple[str, ...]
    commit: str | None = None
    built_at: str = ""  # when, as shown to people

    @property
    def label(self) -> str:
        at = f"commit {self.commit[:10]}" if self.commit else "an unknown commit"
        return f"{at}, {self.built_at}" if self.built_at else at


@dataclass(frozen=True)
class ModelColumns:
    """What the analysis knows of one model: its columns, and why they are not fully known.
    `unknown`: nothing static says what its columns are (its last build's columns may)."""

    relation: Relation
    note: str | None = None
    unknown: bool = False


@dataclass
class ProjectColumns:
    """Every node's columns, in build order."""

    models: dict[str, ModelColumns] = field(default_factory=dict)

    def of(self, name: str) -> Relation:
        found = self.models.get(name)
        return found.relation if found else UNKNOWN

    @property
    def notes(self) -> dict[str, str]:
        return {n: m.note for n, m in self.models.items() if m.note}

    @property
    def unknown(self) -> list[str]:
        """The models whose columns nothing static says (in build order)."""
        return [n for n, m in self.models.items() if m.unknown]

    def lineage(self, name: str, inlined: frozenset[str] = frozenset()) -> Lineage:
        """Each output column of `name` with the upstream model columns it is computed from; a
        column of an `inlined` (ephemeral) model stands for what that model's column reads."""
        out = []
        for col in self.of(name).columns:
            found: set[Source] = set()
            todo, seen = list(col.sources), set()
            while todo:
                src = todo.pop()
                if src in seen or src[0] == name:
                    continue
                seen.add(src)
                if src[0] in inlined:
                    upstream = self.of(src[0]).get(src[1])
                    todo.extend(upstream.sources if upstream else ())
                else:
                    found.add(src)
            out.append((col.name, tuple(sorted(found))))
        return tuple(out)

    def downstream(self, source: Source) -> list[Source]:
        """The model columns computed from `source`, directly or through others, in build order."""
        reached = {(source[0], source[1].lower())}
        out: list[Source] = []
        for name, model in self.models.items():
            for col in model.relation.columns:
                if any((m, c.lower()) in reached for m, c in col.sources if m != name):
                    reached.add((name, col.name.lower()))
                    out.append((name, col.name))
        return out


class _Unanalysable(Exception):
    """A construct this analysis does not follow: the model's columns are unknown (never an error)."""


_KEYWORD_COLUMNS = {
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "current_role",
    "current_schema",
    "current_catalog",
    "session_user",
    "user",
    "localtime",
    "localtimestamp",
    "rowid",
}
_STRING_TYPES = {exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR}


def _csv_header(data: bytes, tab: bool) -> tuple[str, ...] | None:
    """The header of a CSV file as DuckDB's sniffer reads it, or None where it might read it
    otherwise (another delimiter, no header row, names that look like data)."""
    first = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    delimiter = "\t" if tab else ","
    others = {",", ";", "|", "\t"} - {delimiter}
    if not first.strip() or (delimiter not in first and any(o in first for o in others)):
        return None
    names = [n.strip() for n in next(csv.reader(io.StringIO(first), delimiter=delimiter), [])]
    if not names or len({n.lower() for n in names}) != len(names):
        return None
    for n in names:
        if not n.strip() or n.strip().replace(".", "", 1).lstrip("-").isdigit():
            return None
    return tuple(names)


def _declared(node: Node, complete: bool) -> Relation:
    """Declared columns; their types only where the build casts to them (not an external table's)."""
    cast = node.kind != "table"
    cols = tuple(
        Column(c, spec.type if cast else None, frozenset({(node.name, c)}))
        for c, spec in node.columns.items()
    )
    return Relation(cols, complete) if cols or complete else UNKNOWN


def _leaf(c: Collector, node: Node, upstream: ProjectColumns) -> ModelColumns:
    """Columns of a node that is not a query: seeds, sources, external tables, Python models, snapshots."""
    if node.kind in ("seed", "source") and node.data_format == "csv" and node.data_path:
        try:
            header = _csv_header(c.tree.read(node.data_path), node.data_path.lower().endswith(".tsv"))
        except OSError:
            header = None
        if header is not None:
            types = node.declared_types
            cols = tuple(Column(h, types.get(h), frozenset({(node.name, h)})) for h in header)
            return ModelColumns(Relation(cols, True))
    if node.kind == "snapshot" and node.deps:
        base = upstream.of(node.deps[0])
        cols = tuple(Column(x.name, x.type, frozenset({(node.deps[0], x.name)})) for x in base.columns)
        return ModelColumns(Relation(cols, False))  # plus its validity columns
    relation = _declared(node, False)
    if relation.columns:
        return ModelColumns(relation)
    why = {"python": "a Python model", "table": "an external table"}.get(node.kind, f"a {node.kind}")
    return ModelColumns(relation, f"columns unknown: {why} without `columns:`", unknown=True)


def _from_build(name: str, built: BuiltColumns) -> ModelColumns:
    cols = tuple(Column(n, None, frozenset({(name, n)})) for n in built.names)
    shown = ", ".join(built.names[:8]) + (", ..." if len(built.names) > 8 else "")
    note = f"columns from its last build ({built.label}), not from the code: {shown}"
    return ModelColumns(Relation(cols, True, frozenset({name})), note)


@dataclass
class _Reporter:
    """Where a model's findings go: its SQL's file and first line (None: only the model's line)."""

    c: Collector
    node: Node
    lenient: bool  # a dbt model: its declared columns are documentation, not a contract
    origin: str = ""  # appended to each finding: whose columns came from their last build

    def sql_line(self, token: exp.Expr) -> tuple[str, int | None]:
        node = self.node
        if node.sql_at is None:
            return node.file, node.line
        file, first = node.sql_at
        ident = token.this if isinstance(token, exp.Column) else token
        line = ident.meta.get("line") if isinstance(ident, exp.Expr) else None
        return file, (first + line - 1 if line else first)

    def at_token(self, token: exp.Expr, message: str) -> None:
        file, line = self.sql_line(token)
        self.c.add(file, message + self.origin, line, self.node.name)

    def at_key(self, key: str, message: str) -> None:
        line = self.node.key_lines.get(key, self.node.line)
        self.c.add(self.node.file, message + self.origin, line, self.node.name)


def _origin(built_from: Iterable[str], built: Mapping[str, BuiltColumns]) -> str:
    """What a finding adds when the columns it rests on are a last build's, not the code's."""
    shown = [f"{n} ({built[n].label})" for n in sorted(built_from) if n in built]
    if not shown:
        return ""
    return (
        f" [the columns of {', '.join(shown)} are from the last build, not the code: "
        "declare `columns:` there, or build it again if it changed]"
    )


def _hint(name: str, candidates: Iterable[str]) -> str:
    by_lower = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return f"; did you mean {by_lower[found[0]]!r}?" if found else ""


@dataclass
class _FlatScope:
    """The scope of a query that is one SELECT over plain tables (most models): what the analysis
    reads of sqlglot's Scope, made from one walk of the tree."""

    expression: exp.Select
    selected_sources: dict[str, tuple[exp.Table, exp.Table]]
    columns: list[exp.Column]
    parent: None = None
    is_udtf: bool = False
    set_operation_scopes: tuple = ()

    @classmethod
    def of(cls, select: exp.Select, columns: list[exp.Column]) -> _FlatScope | None:
        from_ = select.args.get("from_")
        tables = [from_.this] if from_ is not None else []
        tables += [j.this for j in select.args.get("joins") or []]
        sources: dict[str, tuple[exp.Table, exp.Table]] = {}
        for t in tables:
            if not isinstance(t, exp.Table) or not isinstance(t.this, exp.Identifier):
                return None
            if t.alias_or_name in sources:
                raise _Unanalysable  # the same alias twice: DuckDB refuses it
            sources[t.alias_or_name] = (t, t)
        return cls(select, sources, columns)


_Scope = Scope | _FlatScope


class _QueryAnalysis:
    """One model query, scope by scope (CTEs, derived tables and subqueries before their users)."""

    def __init__(self, tree: exp.Expr, inputs: Mapping[str, Relation], report: _Reporter):
        self.inputs = inputs  # lower-case node name -> its columns
        self.report = report
        self.out: dict[int, Relation] = {}  # id(scope) -> its output
        self.sources_of: dict[int, dict[str, Relation]] = {}  # id(scope) -> alias -> columns
        self.binds = False  # whether lambdas or comprehensions bind names that are no columns
        columns: list[exp.Column] = []
        queries = 0
        for node in tree.walk():
            if isinstance(node, exp.Column):
                columns.append(node)
            elif isinstance(node, (exp.Query, exp.UDTF, exp.Lateral, exp.With)):
                queries += 1
            elif isinstance(node, (exp.Lambda, exp.Comprehension)):
                self.binds = True
        flat = _FlatScope.of(tree, columns) if queries == 1 and isinstance(tree, exp.Select) else None
        scopes: list[_Scope]
        if flat is not None:  # one plain SELECT: its scope without sqlglot's walk
            scopes = [flat]
        else:
            built = build_scope(tree)
            if built is None:
                raise _Unanalysable
            scopes = list(built.traverse())
        self.root: _Scope = scopes[-1]
        for scope in scopes:
            self.out[id(scope)] = self._rename(scope, self._output(scope))

    @property
    def result(self) -> Relation:
        return self.out[id(self.root)]

    # --- sources -----------------------------------------------------------------------------

    def _source(self, scope: _Scope, name: str) -> Relation:
        node, source = scope.selected_sources[name]
        if node.args.get("pivots"):
            raise _Unanalysable  # PIVOT / UNPIVOT make columns of values
        if isinstance(source, Scope):
            rel = self.out.get(id(source), UNKNOWN)
        elif isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
            rel = self.inputs.get(source.name.lower(), UNKNOWN)
        else:
            rel = UNKNOWN
        alias = node.args.get("alias") if isinstance(node, exp.Table) else None
        if isinstance(alias, exp.TableAlias) and alias.columns:
            return _renamed(rel, [a.name for a in alias.columns])
        return rel

    def _sources(self, scope: _Scope) -> dict[str, Relation]:
        found = self.sources_of.get(id(scope))
        if found is None:
            found = {name: self._source(scope, name) for name in scope.selected_sources}
            self.sources_of[id(scope)] = found
        return found

    @staticmethod
    def _rename(scope: _Scope, rel: Relation) -> Relation:
        """A CTE's or derived table's column list (`with c(a, b) as ...`) renames its output."""
        parent = scope.expression.parent
        alias = parent.args.get("alias") if isinstance(parent, (exp.CTE, exp.Subquery)) else None
        if not isinstance(alias, exp.TableAlias) or not alias.columns:
            return rel
        return _renamed(rel, [a.name for a in alias.columns])

    # --- output of one scope ------------------------------------------------------------------

    def _output(self, scope: _Scope) -> Relation:
        expr = scope.expression
        if isinstance(expr, exp.SetOperation):
            return self._set_operation(scope, expr)
        if isinstance(expr, exp.Select):
            return self._select(scope, expr)
        if isinstance(expr, exp.Values):
            return UNKNOWN
        if isinstance(expr, exp.UDTF) or scope.is_udtf:
            return UNKNOWN
        raise _Unanalysable

    def _set_operation(self, scope: _Scope, expr: exp.SetOperation) -> Relation:
        left, right = (self.out.get(id(s), UNKNOWN) for s in scope.set_operation_scopes[:2])
        if expr.args.get("by_name"):
            merged = {c.name.lower(): c for c in right.columns}
            cols = [
                Column(c.name, None, c.sources | (merged.pop(c.name.lower()).sources))
                if c.name.lower() in merged
                else Column(c.name, None, c.sources)
                for c in left.columns
            ]
            cols += [Column(c.name, None, c.sources) for c in merged.values()]
            return Relation(tuple(cols), left.complete and right.complete)
        if not (left.complete and right.complete and len(left.columns) == len(right.columns)):
            return Relation(left.columns, False)
        pairs = zip(left.columns, right.columns, strict=True)
        return Relation(
            tuple(
                Column(a.name, a.type if a.type == b.type else None, a.sources | b.sources) for a, b in pairs
            ),
            True,
        )

    def _select(self, scope: _Scope, select: exp.Select) -> Relation:
        sources = self._sources(scope)
        using = self._using(select, sources)
        self._check_reads(scope, select, sources, using)
        cols: list[Column] = []
        complete = True
        for item in select.expressions:
            star = self._star(item, sources, using)
            if star is not None:
                cols.extend(star.columns)
                complete = complete and star.complete
                continue
            inner = item.this if isinstance(item, exp.Alias) else item
            named = isinstance(item, exp.Alias) or isinstance(inner, (exp.Column, exp.Dot))
            if not named or isinstance(inner, (exp.Unnest, exp.Explode)) or _is_columns_call(inner):
                complete = False  # a name DuckDB makes up, or a set of columns
                continue
            cols.append(
                Column(item.alias_or_name, self._type(inner, scope, sources), self._lineage(item, scope))
            )
        return Relation(tuple(cols), complete)

    @staticmethod
    def _using(select: exp.Select, sources: dict[str, Relation]) -> set[str]:
        """Lower-case columns merged by USING / NATURAL joins (one column, not two)."""
        out: set[str] = set()
        seen: set[str] = set()
        from_ = select.args.get("from_")
        if from_ is not None and isinstance(from_.this, exp.Expr):
            seen = {c.name.lower() for c in sources.get(from_.this.alias_or_name, UNKNOWN).columns}
        for join in select.args.get("joins") or []:
            rel = sources.get(join.this.alias_or_name, UNKNOWN)
            if join.args.get("using"):
                out |= {i.name.lower() for i in join.args["using"]}
            elif join.args.get("kind", "").upper() == "NATURAL" or join.args.get("method", "").upper() == (
                "NATURAL"
            ):
                out |= seen & {c.name.lower() for c in rel.columns}
            seen |= {c.name.lower() for c in rel.columns}
        return out

    def _star(self, item: exp.Expr, sources: dict[str, Relation], using: set[str]) -> Relation | None:
        """The columns a `*` or `t.*` select item stands for (None: the item is no star)."""
        if isinstance(item, exp.Star):
            star, rels = item, list(sources.values())
        elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
            star = item.this
            table = item.table
            match = next((k for k in sources if k.lower() == table.lower()), None)
            rels = [sources[match]] if match else [UNKNOWN]
        else:
            return None
        if star.args.get("rename") or not rels:
            return UNKNOWN
        cols: list[Column] = []
        complete = True
        merged: set[str] = set()
        for rel in rels:
            complete = complete and rel.complete
            for col in rel.columns:
                low = col.name.lower()
                if low in using and len(rels) > 1:
                    if low in merged:
                        continue
                    merged.add(low)
                cols.append(col)
        excluded = {e.name.lower() for e in star.args.get("except_") or []}
        replaced = {
            r.alias.lower(): r for r in star.args.get("replace") or [] if isinstance(r, exp.Alias) and r.alias
        }
        out = []
        for col in cols:
            if col.name.lower() in excluded:
                continue
            if col.name.lower() in replaced:
                col = Column(col.name, None, col.sources | self._lineage(replaced[col.name.lower()], None))
            out.append(col)
        return Relation(tuple(out), complete)

    # --- what a scope reads -------------------------------------------------------------------

    def _resolve(self, scope: _Scope, column: exp.Column) -> list[tuple[str, Column]]:
        """(source alias, column) pairs an unqualified or qualified column may be, searching outward."""
        s: _Scope | None = scope
        while s is not None:
            sources = self._sources(s)
            if column.table:
                match = next((k for k in sources if k.lower() == column.table.lower()), None)
                if match is not None:
                    col = sources[match].get(column.name)
                    return [(match, col)] if col else []
            else:
                found = [(k, col) for k, rel in sources.items() if (col := rel.get(column.name))]
                if found:
                    return found
            s = s.parent
        return []

    def _lineage(self, item: exp.Expr, scope: _Scope | None) -> frozenset[Source]:
        """The upstream model columns a select item is computed from."""
        if scope is None:
            return frozenset()
        inner = item.this if isinstance(item, exp.Alias) else item
        if isinstance(inner, exp.Column) and not isinstance(inner.this, exp.Star):
            return frozenset(s for _alias, col in self._resolve(scope, inner) for s in col.sources)
        out: set[Source] = set()
        for column in item.find_all(exp.Column):
            if isinstance(column.this, exp.Star):
                continue
            for _alias, col in self._resolve(scope, column):
                out |= col.sources
        return frozenset(out)

    def _type(self, inner: exp.Expr, scope: _Scope, sources: dict[str, Relation]) -> str | None:
        """The type a select item surely has: a cast's, a passed-through column's, a string's."""
        if isinstance(inner, (exp.Cast, exp.TryCast)) and isinstance(inner.to, exp.DataType):
            if inner.to.this == exp.DataType.Type.USERDEFINED:
                return None
            return inner.to.sql(dialect=DIALECT)
        if isinstance(inner, exp.Column) and not isinstance(inner.this, exp.Star):
            found = self._resolve(scope, inner)
            return found[0][1].type if len(found) == 1 else None
        if isinstance(inner, exp.Literal) and inner.is_string:
            return "VARCHAR"
        if isinstance(inner, exp.Boolean):
            return "BOOLEAN"
        return None

    def _check_reads(
        self, scope: _Scope, select: exp.Select, sources: dict[str, Relation], using: set[str]
    ) -> None:
        aliases = {e.alias.lower() for e in select.expressions if isinstance(e, exp.Alias)}
        # a select item sees only the aliases of the items before it (DuckDB refuses a later one or
        # its own); WHERE, GROUP BY, HAVING and ORDER BY see them all
        earlier: dict[int, set[str]] = {}
        before: set[str] = set()
        for item in select.expressions:
            for col in item.find_all(exp.Column):
                earlier[id(col)] = set(before)
            if isinstance(item, exp.Alias):
                before.add(item.alias.lower())
        for column in scope.columns:
            if isinstance(column.this, exp.Star) or not column.name:
                continue
            if column.find_ancestor(exp.Select) is not select:
                continue  # a correlated subquery's column: checked in its own scope
            low = column.name.lower()
            if self.binds and _bound_by_lambda(column, low):
                continue
            if column.table:
                self._check_qualified(scope, column, sources)
                continue
            if low in _KEYWORD_COLUMNS:
                continue
            found = [(k, rel) for k, rel in sources.items() if rel.get(column.name)]
            if len(found) > 1 and low not in using:
                kinds = [k for k, _ in found]
                self.report.at_token(
                    column,
                    f"column {column.name!r} is ambiguous: {' and '.join(repr(k) for k in kinds)} both "
                    f"have it; write {kinds[0]}.{column.name}",
                )
                continue
            if found or low in earlier.get(id(column), aliases) or low in {k.lower() for k in sources}:
                continue  # a source's column, a select alias (DuckDB's lateral aliases), a row value
            if self._outer_has(scope.parent, column.name):
                continue
            if not sources or not all(rel.complete for rel in sources.values()):
                continue
            if not self._outer_complete(scope.parent):
                continue
            names = [n for rel in sources.values() for n in rel.names]
            where = next(iter(sources)) if len(sources) == 1 else "its inputs"
            later = (
                f"; {column.name!r} is the alias of this or a later select item, which an item "
                "cannot read (only the aliases of the items before it)"
                if low in aliases
                else _hint(column.name, names)
            )
            self.report.at_token(
                column, f"column {column.name!r} is not in {where} (columns: {', '.join(names)})" + later
            )

    def _check_qualified(self, scope: _Scope, column: exp.Column, sources: dict[str, Relation]) -> None:
        if column.args.get("db") or column.args.get("catalog"):
            return  # a struct field path (a.b.c): the first part is what resolves
        match = next((k for k in sources if k.lower() == column.table.lower()), None)
        if match is None:
            return  # a struct column's field (s.f), an outer scope's alias: not checked
        rel = sources[match]
        if rel.get(column.name) is None and rel.complete:
            self.report.at_token(
                column,
                f"column {column.name!r} is not in {match} (columns: {', '.join(rel.names)})"
                + _hint(column.name, rel.names),
            )

    def _outer_has(self, scope: _Scope | None, name: str) -> bool:
        while scope is not None:
            if any(rel.get(name) or not rel.complete for rel in self._sources(scope).values()):
                return True
            if any(k.lower() == name.lower() for k in scope.selected_sources):
                return True
            scope = scope.parent
        return False

    def _outer_complete(self, scope: _Scope | None) -> bool:
        while scope is not None:
            if not all(rel.complete for rel in self._sources(scope).values()):
                return False
            scope = scope.parent
        return True


def _as_read(model: str, rel: Relation) -> Relation:
    """`rel` as a query reading `model` sees it: each column comes from `model`'s column."""
    cols = tuple(Column(c.name, c.type, frozenset({(model, c.name)})) for c in rel.columns)
    return Relation(cols, rel.complete, rel.built_from)


def _renamed(rel: Relation, names: list[str]) -> Relation:
    """`rel` under a column list: its first columns renamed (more names than columns: only names)."""
    if len(names) > len(rel.columns):
        return Relation(tuple(Column(n) for n in names), False)
    cols = tuple(Column(n, c.type, c.sources) for n, c in zip(names, rel.columns, strict=False))
    return Relation(cols + rel.columns[len(names) :], rel.complete)


def _bound_by_lambda(column: exp.Column, low: str) -> bool:
    """Whether `column` is a lambda's parameter (`x -> x + 1`) or a comprehension's variable."""
    node = column.parent
    while node is not None:
        if isinstance(node, exp.Lambda) and any(
            isinstance(p, exp.Expr) and p.name.lower() == low for p in node.expressions
        ):
            return True
        if isinstance(node, exp.Comprehension) and isinstance(node.args.get("expression"), exp.Expr):
            if node.args["expression"].name.lower() == low:
                return True
        node = node.parent
    return False


def _is_columns_call(e: exp.Expr) -> bool:
    return isinstance(e, exp.Anonymous) and e.name.lower() in ("columns", "unpack")


def _same_type(declared: str, inferred: str) -> bool | None:
    """Whether two canonical types are the same as the warehouse names them (None: cannot tell)."""
    try:
        a, b = exp.DataType.build(declared, dialect=DIALECT), exp.DataType.build(inferred, dialect=DIALECT)
    except SqlglotError:
        return None
    if a.this in _STRING_TYPES and b.this in _STRING_TYPES:
        return True
    if a.this != b.this:
        return False
    if a.expressions and b.expressions:
        return a.sql(dialect=DIALECT) == b.sql(dialect=DIALECT)
    return None if a.expressions or b.expressions else True


def _shown(canonical: str) -> str:
    """A type as the warehouse names it (sqlglot renders DuckDB's VARCHAR as TEXT)."""
    return "VARCHAR" if canonical.upper() == "TEXT" else canonical


def _check_declared(report: _Reporter, rel: Relation) -> None:
    """`columns:` and check entries name output columns; declared types are ones the query makes."""
    node = report.node
    names = rel.names
    for col, spec in node.columns.items():
        found = rel.get(col)
        if found is None:
            if rel.complete and not report.lenient:
                report.at_key(
                    f"columns.{col}", f"columns.{col}: the query has no column {col!r}" + _hint(col, names)
                )
            continue
        if spec.type and found.type and _same_type(spec.type, found.type) is False:
            report.at_key(
                f"columns.{col}",
                f"columns.{col}.type: declared {_shown(spec.type)}, "
                f"but the query makes it {_shown(found.type)}",
            )
    if report.lenient:
        return
    for i, chk in enumerate(node.checks):
        for col in _check_columns(chk.kind, chk.args):
            if rel.get(col) is None and rel.complete:
                report.at_key(
                    f"checks.{i}",
                    f"checks: {chk.kind} names {col!r}, which the query does not output" + _hint(col, names),
                )


def _check_columns(kind: str, args: object) -> list[str]:
    """The columns of its own model a model-level check names."""
    if kind == "unique" and isinstance(args, list):
        return [a for a in args if isinstance(a, str)]
    if (
        kind in ("relationship", "freshness")
        and isinstance(args, dict)
        and isinstance(args.get("column"), str)
    ):
        return [args["column"]]
    return []


def _check_relationship_fields(
    report: _Reporter, columns: ProjectColumns, lower: dict[str, str], built: Mapping[str, BuiltColumns]
) -> None:
    node = report.node
    for i, chk in enumerate(node.checks):
        if chk.kind != "relationship" or not isinstance(chk.args, dict) or report.lenient:
            continue
        target = lower.get(str(chk.args.get("to", "")).lower())
        rel = columns.of(target) if target else UNKNOWN
        fld = chk.args.get("field")
        if isinstance(fld, str) and rel.complete and rel.get(fld) is None:
            report.origin = _origin(rel.built_from, built)  # the target's, not the inputs'
            report.at_key(
                f"checks.{i}",
                f"checks: relationship field {fld!r} is not a column of {target}" + _hint(fld, rel.names),
            )


def analyse(
    c: Collector,
    nodes: Mapping[str, Node],
    lenient: frozenset[str] = frozenset(),
    built: Mapping[str, BuiltColumns] | None = None,
) -> ProjectColumns:
    """Every node's columns, in the order of `nodes` (dependency order); the issues found go to `c`.
    `lenient`: nodes whose declared columns are documentation (dbt's), not a contract. `built`: the
    last build's columns of models nothing static describes (see `ProjectColumns.unknown`)."""
    built = built or {}
    out = ProjectColumns()
    lower = {n.lower(): n for n in nodes}
    late = _late_key if lenient else None  # only dbt models render late
    reports = []
    for name, node in nodes.items():
        report = _Reporter(c, node, name in lenient)
        if node.kind != "sql" or node.sql is None:
            found = _leaf(c, node, out)
        elif late is not None and late(node.sql):
            found = ModelColumns(UNKNOWN, "columns unknown: rendered at build time", unknown=True)
        else:
            found = _query(node, out, report, built)
            if not found.unknown:
                reports.append(report)
        out.models[name] = _from_build(name, built[name]) if found.unknown and name in built else found
    for report in reports:  # a relationship may name a model built later
        _check_relationship_fields(report, out, lower, built)
    return out


class _Analysed:
    """Each SQL model's analysis (its columns and findings) kept per process by everything it
    depends on: its definition and its inputs' columns. A project loaded again with one file
    changed analyses only the models whose query or inputs changed."""

    MAX = 20_000

    def __init__(self) -> None:
        self._done: OrderedDict[tuple, tuple[ModelColumns, tuple[Issue, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[ModelColumns, tuple[Issue, ...]] | None:
        with self._lock:
            found = self._done.get(key)
            if found is not None:
                self._done.move_to_end(key)
            return found

    def put(self, key: tuple, value: tuple[ModelColumns, tuple[Issue, ...]]) -> None:
        with self._lock:
            self._done[key] = value
            while len(self._done) > self.MAX:
                self._done.popitem(last=False)


_ANALYSED = _Analysed()


def _query_key(node: Node, reads: list[Relation], report: _Reporter) -> tuple:
    """What `_query` reads of a node and its inputs (the findings' places and texts included)."""
    return (
        node.name,
        node.sql,
        node.deps,
        node.sql_at,
        node.file,
        node.line,
        tuple(node.key_lines.items()),
        tuple((c, spec.type) for c, spec in node.columns.items()),
        repr([(chk.kind, chk.args) for chk in node.checks]),
        report.lenient,
        report.origin,
        tuple(reads),
    )


def _query(
    node: Node, out: ProjectColumns, report: _Reporter, built: Mapping[str, BuiltColumns]
) -> ModelColumns:
    """A SQL model's columns from its query and its inputs' columns; its findings go to `report`."""
    reads = [out.of(d) for d in node.deps]
    built_from = frozenset[str]().union(*(rel.built_from for rel in reads))
    report.origin = _origin(built_from, built)
    key = _query_key(node, reads, report)
    found = _ANALYSED.get(key)
    if found is None:
        start = len(report.c.issues)
        result = _analyse_query(node, reads, built_from, report)
        found = (result, tuple(report.c.issues[start:]))
        _ANALYSED.put(key, found)
    else:
        report.c.issues.extend(found[1])
    return found[0]


def _analyse_query(
    node: Node, reads: list[Relation], built_from: frozenset[str], report: _Reporter
) -> ModelColumns:
    inputs = {d.lower(): _as_read(d, rel) for d, rel in zip(node.deps, reads, strict=True)}
    try:
        rel = _QueryAnalysis(parse_query(node.sql or "", DIALECT).tree, inputs, report).result
    except (_Unanalysable, SqlError, OptimizeError, SqlglotError, RecursionError):
        return ModelColumns(UNKNOWN, "columns unknown: its query is beyond the column analysis", unknown=True)
    if built_from and rel.complete:
        rel = Relation(rel.columns, True, built_from)
    unknown = [d for d, r in zip(node.deps, reads, strict=True) if not r.columns and not r.complete]
    note = f"columns not checked: reads {', '.join(unknown)}, whose columns are unknown" if unknown else None
    _check_declared(report, rel)
    return ModelColumns(rel, note)


def _late_key(sql: str) -> bool:
    from gitops_data.project.dbt.late import key_of  # the dbt front-end, loaded only for dbt projects

    return key_of(sql) is not None


class ColumnNotFound(GitopsError):
    """A MODEL.COLUMN that names no model, or no column the analysis knows of that model."""


@dataclass(frozen=True)
class ColumnTrace:
    """A column's lineage both ways: every column it is computed from (transitively, nearest
    first) and every column computed from it (in build order), each with its direct sources."""

    model: str
    column: str
    type: str | None
    known: bool  # False: the model's columns are not fully known, so neither is its lineage
    upstream: tuple[tuple[Source, tuple[Source, ...]], ...]
    downstream: tuple[tuple[Source, tuple[Source, ...]], ...]


def trace(columns: ProjectColumns, target: str) -> ColumnTrace:
    """The lineage of `target` (MODEL.COLUMN, names in any case)."""
    model, sep, column = target.partition(".")
    if not sep or not model or not column:
        raise ColumnNotFound(f"{target!r}: name a column as MODEL.COLUMN")
    by_lower = {n.lower(): n for n in columns.models}
    name = by_lower.get(model.lower())
    if name is None:
        raise ColumnNotFound(f"no model {model!r}" + _hint(model, columns.models))
    rel = columns.of(name)
    col = rel.get(column)
    if col is None:
        known = f" (its columns: {', '.join(rel.names)})" if rel.columns else " (its columns are unknown)"
        raise ColumnNotFound(f"model {name!r} has no column {column!r}{known}" + _hint(column, rel.names))

    def direct(src: Source) -> tuple[Source, ...]:
        found = columns.of(src[0]).get(src[1])
        return tuple(sorted(s for s in (found.sources if found else ()) if s[0] != src[0]))

    up: list[tuple[Source, tuple[Source, ...]]] = []
    seen = {(name, col.name)}
    todo = list(direct((name, col.name)))
    while todo:
        src = todo.pop(0)
        if src in seen:
            continue
        seen.add(src)
        up.append((src, direct(src)))
        todo.extend(direct(src))
    down = columns.downstream((name, col.name))
    reached = {(m, c.lower()) for m, c in down} | {(name, col.name.lower())}
    downstream = tuple(
        (src, tuple(s for s in direct(src) if (s[0], s[1].lower()) in reached)) for src in down
    )
    return ColumnTrace(name, col.name, col.type, rel.complete, tuple(up), downstream)
