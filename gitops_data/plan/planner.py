"""Pure planning: a project at a commit + what the catalog knows -> the steps to execute.

A plan is data, computed before anything runs; nothing here touches Git, a warehouse or Dagster.
New builds get their id and physical table here, so every step's SQL and every cross-model check
already names the exact tables it reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TypedDict

from gitops_data.fingerprint import data_fingerprints, local_fingerprint
from gitops_data.naming import physical_table, qualified
from gitops_data.plan.impact import column_impact
from gitops_data.plan.records import BuildRecord, CatalogState, audit_of
from gitops_data.plan.steps import Action, CheckState, Mode, ModelStep, Plan, PlannedCheck, Read
from gitops_data.project.checks import DeclaredCheck, check_hash, declared_checks
from gitops_data.project.columns import Lineage
from gitops_data.project.nodes import Node, Project
from gitops_data.sql import added_columns, parse_query, reads_columns, rewrite


def new_build_id() -> str:
    return uuid.uuid4().hex[:8]


def _planned_checks(
    checks: list[DeclaredCheck],
    build: BuildRecord | None,
    state: CatalogState,
    read_of: Callable[[str], Read],
) -> tuple[PlannedCheck, ...]:
    """Each check with the builds it reads and whether it already ran on `build` (None: a new build).
    A check that reads other models counts as run only for the data versions it read then."""
    out = []
    for chk in checks:
        reads = tuple(read_of(m) for m in chk.reads)
        versions = [(r.model, r.version) for r in reads if r.version is not None]
        effective = check_hash([chk.hash, versions]) if versions else chk.hash
        rec = audit_of(state.audits, build.build_id, chk.name, effective) if build else None
        if rec is None:
            out.append(PlannedCheck(chk, CheckState.PENDING, effective, reads))
        else:
            state_ = CheckState.PASSED if rec.passed else CheckState.FAILED
            out.append(PlannedCheck(chk, state_, effective, reads, rec.failed_rows))
    return tuple(out)


class _Where(TypedDict):
    """Where a model is declared, passed on to its step."""

    file: str
    line: int | None
    materialized: str
    lineage: Lineage


def _build_reason(
    node: Node,
    fp: str,
    prev: BuildRecord | None,
    options: tuple[BuildRecord, ...],
    upstream_built: list[str],
    forced: bool,
    had_publish: bool,
) -> tuple[Mode, str, BuildRecord | None]:
    """(mode, reason, base) of a model that needs a new build."""
    why = (
        "scheduled refresh"
        if forced
        else f"upstream {', '.join(upstream_built)} rebuilt"
        if upstream_built
        else "inputs changed"
    )
    if node.segmented:
        if options:
            return Mode.APPEND, f"appends a segment to build {options[0].build_id} ({why})", options[0]
        if node.incremental is not None and node.incremental.forward_only and prev is not None:
            return (
                Mode.FORWARD_ONLY,
                f"forward-only change: continues the history of build {prev.build_id}",
                prev,
            )
        if prev is not None and prev.fingerprint != fp:
            return (
                Mode.FULL,
                f"definition changed ({prev.fingerprint[:10]} -> {fp[:10]}): full build, new history",
                None,
            )
        return Mode.FULL, "first build" if not had_publish else "new model", None
    if options:
        return Mode.REFRESH, why, None
    if prev is None:
        return Mode.FULL, "new model" if had_publish else "first build", None
    if prev.fingerprint != fp:
        return Mode.FULL, f"fingerprint changed ({prev.fingerprint[:10]} -> {fp[:10]})", None
    return (
        Mode.RESTORE,
        "no valid build of this definition (dropped or changed outside Git); rebuilding",
        None,
    )


def _step_sql(node: Node, reads: tuple[Read, ...], dialect: str) -> str | None:
    """The query a build step runs (in the warehouse's `dialect`), every upstream swapped for the
    table the plan picked (an ephemeral upstream: its own query, inlined)."""
    tables = {r.model.lower(): r.table for r in reads}
    if node.kind == "sql":
        return rewrite(parse_query(node.sql or ""), tables, dialect)
    if node.kind == "snapshot":
        return tables[node.deps[0].lower()]
    return None


def _additive(node: Node, before: Node | None) -> tuple[str, ...]:
    """The output columns a change of SQL model `node` only added (empty: not an additive change)."""
    if (
        before is None
        or node.kind != "sql"
        or before.kind != "sql"
        or node.segmented
        or before.segmented
        or {c: t for c, t in before.declared_types.items()}
        != {c: t for c, t in node.declared_types.items() if c in before.declared_types}
    ):
        return ()
    return added_columns(parse_query(before.sql or ""), parse_query(node.sql or ""))


def make_plan(
    project: Project,
    fingerprints: dict[str, str],
    state: CatalogState,
    env: str,
    schema: str,
    commit: str,
    rebuild: frozenset[str] = frozenset(),
    new_id: Callable[[], str] = new_build_id,
    dialect: str = "duckdb",
    previous: Project | None = None,
    full: bool = False,
) -> Plan:
    """Decide, per node, whether to build or reuse, and which checks still have to run.

    A build is reused when its fingerprint matches and it was computed from the same data the plan
    picks for the upstreams (the data versions in its `inputs`), so data refreshed upstream (a
    scheduled rebuild from an external table, an incremental append) never meets stale downstream
    tables, while a deterministic rebuild (same fingerprint, same data) invalidates nothing.
    `rebuild` forces new builds (a scheduled refresh); their downstream follows.

    With `previous` (the project of `state.baseline`, what the environment serves), a model whose
    own definition did not change and whose inputs hold the same data as its published build's
    keeps that build's table (an alias: a new record, no data written). Its inputs count as the
    same when an upstream's change only added output columns the model does not read (an additive
    change). `full` turns this off.
    """
    internal = project.settings.internal_schema
    lower = {n.lower(): n for n in project.nodes}
    data = data_fingerprints(project)
    inlined = frozenset(n for n, nd in project.nodes.items() if nd.ephemeral)
    models: dict[str, ModelStep] = {}
    inline: dict[str, str] = {}  # ephemeral model -> its query, reads swapped in (canonical dialect)
    additive: dict[str, tuple[str, ...]] = {}  # rebuilt model -> the columns it only added
    origin: dict[str, str] = {}  # aliased model -> the additive change that let it keep its data

    def read_of(name: str) -> Read:
        """How a step or check reads model `name` (already planned: nodes are in build order, and a
        check's target may come later, so checks are planned after all builds)."""
        step = models[lower[name.lower()]]
        if step.action == Action.EXTERNAL:
            return Read(step.name, project.nodes[step.name].table or "")
        if step.action == Action.INLINE:
            return Read(step.name, f"({inline[step.name]})")
        b = step.build
        assert b is not None
        return Read(
            step.name, qualified(internal, b.table), b.build_id, b.data_version, step.action == Action.BUILD
        )

    def reads_of(node: Node) -> tuple[Read, ...]:
        """The node's reads; an ephemeral upstream brings the reads of its own query along."""
        out: dict[str, Read] = {}
        for d in node.deps:
            out.setdefault(d, read_of(d))
            if models[d].action == Action.INLINE:
                for r in models[d].reads:
                    out.setdefault(r.model, r)
        return tuple(out.values())

    def widened(node: Node, was: dict[str, str] | None, want: dict[str, str]) -> list[str] | None:
        """The upstreams whose data differs from `was` only by columns `node` does not read (None:
        some input holds other data)."""
        if was is None or set(was) != set(want):
            return None
        changed = [d for d, v in want.items() if was[d] != v]
        if any(d not in additive for d in changed):
            return None
        if changed:
            new_columns = {c.lower() for d in changed for c in additive[d]}
            if node.kind != "sql" or reads_columns(parse_query(node.sql or ""), new_columns):
                return None
        return changed

    def alias_of(name: str, node: Node, want: dict[str, str]) -> tuple[BuildRecord, str] | None:
        """The baseline build whose data this model would compute again, and why."""
        prev = state.baseline.get(name)
        before = previous.nodes.get(name) if previous is not None else None
        if (
            full
            or prev is None
            or before is None
            or node.segmented
            or node.deps != project.physical_deps(name)  # an inlined query may have changed
            or local_fingerprint(before) != local_fingerprint(node)
        ):
            return None
        changed = widened(node, prev.inputs, want)
        if changed:
            origin[name] = changed[0]
            return prev, f"upstream {', '.join(changed)} only gained columns it does not read"
        up = next((origin[d] for d in want if d in origin), None)
        if changed is None or up is None:
            return None
        origin[name] = up
        return prev, f"its inputs hold the same data as before ({up}'s additive change)"

    for name, node in project.nodes.items():
        fp = fingerprints[name]
        where = _Where(
            file=node.file,
            line=node.line,
            materialized=node.materialized,
            lineage=project.columns.lineage(name, inlined),
        )
        if node.kind == "table":
            models[name] = ModelStep(
                name, node.kind, fp, Action.EXTERNAL, f"external table {node.table}", **where
            )
            continue
        reads = reads_of(node)
        if node.ephemeral:
            tables = {r.model.lower(): r.table for r in reads}
            inline[name] = rewrite(parse_query(node.sql or ""), tables)
            models[name] = ModelStep(
                name,
                node.kind,
                fp,
                Action.INLINE,
                "ephemeral: inlined into the models that read it",
                reads=reads,
                **where,
            )
            continue
        prev = state.published.get(name)
        prev_fp = prev.fingerprint if prev else None
        options = state.candidates.get((name, fp), ())
        physical = project.physical_deps(name)
        # a restored or aliased upstream has the same data as before: it does not invalidate its downstream
        upstream_built = [
            d
            for d in physical
            if models[d].action == Action.BUILD and models[d].mode not in (Mode.RESTORE, Mode.ALIAS)
        ]
        # a read of a build always carries its data version (see read_of)
        want = {r.model: r.version for r in reads if r.build_id is not None and r.version is not None}
        # forced: a scheduled refresh of this node, or of the external table it reads
        forced = name in rebuild or any(
            d in rebuild and models[d].action == Action.EXTERNAL for d in physical
        )
        # a build computed from the same upstream data versions holds the same data (a build
        # recorded before inputs were, only while no upstream is rebuilt)
        match = None
        if not forced:
            match = next(
                (
                    b
                    for b in options
                    if (b.inputs is None and not upstream_built)
                    or (b.inputs is not None and all(b.inputs.get(d) == v for d, v in want.items()))
                ),
                None,
            )
        if match is not None:
            same = prev is not None and prev.build_id == match.build_id
            reason = (
                "unchanged" if same else f"reuses build {match.build_id} made for commit {match.commit[:10]}"
            )
            models[name] = ModelStep(
                name,
                node.kind,
                fp,
                Action.REUSE,
                reason,
                match,
                prev_fp,
                reads=reads,
                served=same,
                **where,
            )
            continue
        alias = None if forced else alias_of(name, node, want)
        if alias is not None:
            aliased, why = alias
            build = BuildRecord(
                new_id(), name, fp, aliased.table, commit, inputs=want, version=aliased.data_version
            )
            models[name] = ModelStep(
                name,
                node.kind,
                fp,
                Action.BUILD,
                f"keeps the data of build {aliased.build_id}: {why}",
                build,
                prev_fp,
                mode=Mode.ALIAS,
                base=aliased,
                reads=reads,
                **where,
            )
            continue
        mode, reason, base = _build_reason(
            node, fp, prev, options, upstream_built, forced, state.published_commit is not None
        )
        build_id = new_id()
        # the data follows from the fingerprint unless an external table or accumulated history feeds it
        deterministic = not node.segmented and all(
            r.build_id is not None and r.version == data[r.model]
            for r in reads
            if models[r.model].action != Action.INLINE
        )
        build = BuildRecord(
            build_id,
            name,
            fp,
            physical_table(name, fp, build_id),
            commit,
            inputs=want,
            version=data[name] if deterministic else build_id,
        )
        models[name] = ModelStep(
            name,
            node.kind,
            fp,
            Action.BUILD,
            reason,
            build,
            prev_fp,
            mode=mode,
            base=base,
            reads=reads,
            sql=_step_sql(node, reads, dialect),
            **where,
        )
        before = previous.nodes.get(name) if previous is not None else None
        was = state.baseline.get(name)
        if (
            not full
            and was is not None
            and widened(node, was.inputs, want) is not None
            and (added := _additive(node, before))
        ):
            additive[name] = added
    for name, step in models.items():
        if step.action not in (Action.EXTERNAL, Action.INLINE):
            checks = declared_checks(project.nodes[name])
            reused = step.build if step.action == Action.REUSE else None
            models[name] = replace(step, checks=_planned_checks(checks, reused, state, read_of))
    for name, added in additive.items():
        kept = sum(1 for o in origin.values() if o == name)
        note = f"additive (new columns {', '.join(added)}): {kept} downstream reused"
        models[name] = replace(models[name], reason=f"{models[name].reason}; {note}")
    served = {n for n, m in models.items() if m.build is not None}
    removed = tuple(sorted(set(state.published) - served))
    moved = frozenset(  # only a model whose fingerprint moved can have changed its own definition
        n for n in project.nodes if (b := state.baseline.get(n)) is None or b.fingerprint != fingerprints[n]
    )
    impact = column_impact(previous, project, moved) if previous is not None else ()
    return Plan(env, schema, commit, internal, models, removed, state.published_commit, impact)
