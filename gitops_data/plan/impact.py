"""Which columns a change touches: per model whose own definition changed, its columns that are
added, removed or computed differently, the downstream columns computed from them (the static
column lineage), and which declared checks cover them (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from gitops_data.errors import SqlError
from gitops_data.fingerprint import local_fingerprint
from gitops_data.project.checks import declared_checks
from gitops_data.project.columns import ProjectColumns, Source
from gitops_data.project.nodes import Node, Project
from gitops_data.sql import DIALECT, parse_query


@dataclass(frozen=True)
class ColumnImpact:
    """One changed model's column impact."""

    model: str
    changed: tuple[str, ...]  # its columns the change touches
    downstream: tuple[Source, ...]  # columns computed from them, directly or not, in build order
    checks: tuple[Source, ...]  # (model, check) of the checks on any of these columns
    unchecked: tuple[Source, ...]  # the touched columns (its own and downstream) no check covers
    complete: bool = True  # False: some columns are unknown, so there may be more


def _projections(node: Node) -> tuple[dict[str, str], str] | None:
    """A plain SELECT's select items by lower-case output name, and the rest of the query (what
    decides its rows); None where columns cannot be told apart (CTEs, set operations, stars)."""
    if node.kind != "sql" or not node.sql:
        return None
    try:
        tree = parse_query(node.sql, DIALECT).tree
    except SqlError:
        return None
    if not isinstance(tree, exp.Select) or tree.args.get("with_") is not None:
        return None
    items: dict[str, str] = {}
    for e in tree.expressions:
        if e.is_star or not e.alias_or_name:
            return None
        items[e.alias_or_name.lower()] = e.sql(dialect=DIALECT, comments=False)
    rest = tree.copy()
    rest.set("expressions", [exp.Star()])
    return items, rest.sql(dialect=DIALECT, comments=False)


def _touched(name: str, before: Project, after: Project) -> tuple[list[str], list[str]]:
    """(columns of `name` the change touches that it still has, those it lost)."""
    old, new = before.columns.of(name), after.columns.of(name)
    lost = [c.name for c in old.columns if new.get(c.name) is None]
    p_old, p_new = _projections(before.nodes[name]), _projections(after.nodes[name])
    if p_old is None or p_new is None or p_old[1] != p_new[1]:
        return [c.name for c in new.columns], lost  # the rows may differ: every column does
    kept = []
    for col in new.columns:
        was = old.get(col.name)
        low = col.name.lower()
        if was is None or was.type != col.type or p_old[0].get(low) != p_new[0].get(low):
            kept.append(col.name)
    return kept, lost


def _coverage(project: Project, columns: list[Source]) -> tuple[list[Source], list[Source]]:
    """(the (model, check)s on `columns`, the columns among them no check covers)."""
    by_model: dict[str, set[str]] = {}
    for m, c in columns:
        by_model.setdefault(m, set()).add(c.lower())
    checks: list[Source] = []
    covered: set[Source] = set()
    for m, cols in by_model.items():
        node = project.nodes.get(m)
        for chk in declared_checks(node) if node is not None else ():
            named = {chk.column.lower()} if chk.column else _model_check_columns(chk.kind, chk.args)
            hit = named & cols
            if hit:
                checks.append((m, chk.name))
                covered |= {(m, c) for c in hit}
    return checks, [(m, c) for m, c in columns if (m, c.lower()) not in covered]


def _model_check_columns(kind: str, args: object) -> set[str]:
    if kind == "unique_combination" and isinstance(args, list):
        return {a.lower() for a in args if isinstance(a, str)}
    if isinstance(args, dict) and isinstance(args.get("column"), str):
        return {args["column"].lower()}
    return set()


def column_impact(
    before: Project, after: Project, candidates: frozenset[str] | None = None
) -> tuple[ColumnImpact, ...]:
    """Per model of `after` whose own definition changed since `before`, in build order
    (`candidates`: the only models that may have changed, e.g. those whose fingerprint did)."""
    out = []
    for name, node in after.nodes.items():
        if candidates is not None and name not in candidates:
            continue
        was = before.nodes.get(name)
        if was is None or local_fingerprint(was) == local_fingerprint(node):
            continue
        kept, lost = _touched(name, before, after)
        if not kept and not lost:
            continue
        down = _downstream(after.columns, name, kept) + [
            s for s in _downstream(before.columns, name, lost) if after.columns.of(s[0]).get(s[1])
        ]
        order = {n: i for i, n in enumerate(after.nodes)}
        down = sorted(dict.fromkeys(down), key=lambda s: (order.get(s[0], len(order)), _position(after, s)))
        own = [(name, c) for c in kept]
        checks, unchecked = _coverage(after, own + down)
        complete = after.columns.of(name).complete and all(after.columns.of(m).complete for m, _ in down)
        out.append(
            ColumnImpact(name, tuple(kept + lost), tuple(down), tuple(checks), tuple(unchecked), complete)
        )
    return tuple(out)


def _position(project: Project, src: Source) -> int:
    names = [n.lower() for n in project.columns.of(src[0]).names]
    return names.index(src[1].lower()) if src[1].lower() in names else len(names)


def _downstream(columns: ProjectColumns, name: str, cols: list[str]) -> list[Source]:
    out: list[Source] = []
    for c in cols:
        out.extend(columns.downstream((name, c)))
    return out
