"""Pure planning: a project at a commit + what the catalog knows -> what to build, audit and publish.

A plan is data, computed before anything runs. Nothing here touches Git, DuckDB or Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from gitops_data.audit.declared import DeclaredCheck, declared_checks
from gitops_data.spec.project import Project

Action = Literal["build", "reuse", "external"]
CheckState = Literal["passed", "failed", "pending"]


@dataclass(frozen=True)
class BuildRecord:
    """One build: an immutable physical table in the internal schema."""

    build_id: str
    model: str
    fingerprint: str
    table: str
    commit: str
    run_id: str | None = None
    row_count: int | None = None
    created_at: datetime | None = None
    inputs: dict[str, str] | None = None  # upstream model -> data version it was computed from (None: unknown)
    version: str | None = None  # data version: the fingerprint when the data follows from it, else the build id

    @property
    def data_version(self) -> str:
        """Builds with equal data versions hold equal data. Deterministic builds (no external table
        upstream, no accumulated history) share their fingerprint as version; others are unique."""
        return self.version or self.fingerprint


@dataclass(frozen=True)
class AuditRecord:
    build_id: str
    check: str
    check_hash: str
    passed: bool
    failed_rows: int | None = None


@dataclass(frozen=True)
class CatalogState:
    """What the planner needs from the catalog, for one environment."""

    # (model, fp) -> reusable builds, best first (published in this env, published elsewhere, newest)
    candidates: dict[tuple[str, str], tuple[BuildRecord, ...]] = field(default_factory=dict)
    audits: dict[str, dict[str, AuditRecord]] = field(default_factory=dict)  # build id -> check -> latest
    published: dict[str, BuildRecord] = field(default_factory=dict)  # model -> currently published build
    published_commit: str | None = None


@dataclass(frozen=True)
class CheckPlan:
    check: DeclaredCheck
    state: CheckState
    failed_rows: int | None = None


@dataclass(frozen=True)
class ModelPlan:
    name: str
    kind: str
    fingerprint: str
    action: Action
    reason: str
    build: BuildRecord | None = None
    previous_fingerprint: str | None = None
    checks: tuple[CheckPlan, ...] = ()
    # for builds: full | refresh (same definition, fresh data) | restore (same definition and data,
    # the old table is gone) | append (a segment on `base`) | forward_only
    mode: str = "full"
    base: BuildRecord | None = None

    def checks_in(self, state: CheckState) -> list[str]:
        return [c.check.name for c in self.checks if c.state == state]


@dataclass(frozen=True)
class Plan:
    env: str
    schema: str
    commit: str
    models: dict[str, ModelPlan]
    removed: tuple[str, ...] = ()
    previous_commit: str | None = None

    @property
    def to_build(self) -> list[str]:
        return [m.name for m in self.models.values() if m.action == "build"]

    @property
    def to_audit(self) -> dict[str, list[str]]:
        """Reused builds whose current checks have not run on them yet (model -> check names)."""
        return {
            m.name: m.checks_in("pending")
            for m in self.models.values()
            if m.action == "reuse" and m.checks_in("pending")
        }

    def failures(self, blocking: bool = True) -> list[tuple[str, str, int | None]]:
        return [
            (m.name, c.check.name, c.failed_rows)
            for m in self.models.values()
            for c in m.checks
            if c.state == "failed" and c.check.blocking == blocking
        ]

    def blocked_reason(self) -> str:
        return "blocking checks failed: " + ", ".join(f"{m}.{c}" for m, c, _ in self.failures(blocking=True))

    @property
    def ready(self) -> bool:
        """Every model has a build and every blocking check of every build passed."""
        return all(
            m.action == "external"
            or (m.action == "reuse" and all(c.state == "passed" or not c.check.blocking for c in m.checks))
            for m in self.models.values()
        )

    @property
    def views(self) -> dict[str, str]:
        """model -> physical table, for every model the environment serves."""
        return {m.name: m.build.table for m in self.models.values() if m.build is not None}

    @property
    def unchanged(self) -> bool:
        return self.commit == self.previous_commit


def _check_plans(checks: list[DeclaredCheck], build: BuildRecord | None, state: CatalogState) -> tuple[CheckPlan, ...]:
    done = state.audits.get(build.build_id, {}) if build else {}
    out = []
    for chk in checks:
        rec = done.get(chk.name)
        if rec is None or rec.check_hash != chk.hash:
            out.append(CheckPlan(chk, "pending"))
        else:
            out.append(CheckPlan(chk, "passed" if rec.passed else "failed", rec.failed_rows))
    return tuple(out)


def _build_reason(name: str, node, fp: str, prev: BuildRecord | None, options: tuple[BuildRecord, ...],
                  upstream_built: list[str], forced: bool, had_publish: bool) -> tuple[str, str, BuildRecord | None]:
    """(mode, reason, base) of a model that needs a new build."""
    why = ("scheduled refresh" if forced else
           f"upstream {', '.join(upstream_built)} rebuilt" if upstream_built else "inputs changed")
    if node.segmented:
        if options:
            return "append", f"appends a segment to build {options[0].build_id} ({why})", options[0]
        if node.incremental is not None and node.incremental.forward_only and prev is not None:
            return "forward_only", f"forward-only change: continues the history of build {prev.build_id}", prev
        if prev is not None and prev.fingerprint != fp:
            return "full", f"definition changed ({prev.fingerprint[:10]} -> {fp[:10]}): full build, new history", None
        return "full", "first build" if not had_publish else "new model", None
    if options:
        return "refresh", why, None
    if prev is None:
        return "full", "new model" if had_publish else "first build", None
    if prev.fingerprint != fp:
        return "full", f"fingerprint changed ({prev.fingerprint[:10]} -> {fp[:10]})", None
    return "restore", "no valid build of this definition (dropped or changed outside Git); rebuilding", None


def make_plan(
    project: Project,
    fingerprints: dict[str, str],
    state: CatalogState,
    env: str,
    schema: str,
    commit: str,
    rebuild: frozenset[str] = frozenset(),
) -> Plan:
    """Decide, per node, whether to build or reuse, and which checks still have to run.

    A build is reused when its fingerprint matches and it was computed from the same data the plan
    picks for the upstreams (the data versions in its `inputs`), so data refreshed upstream (a
    scheduled rebuild from an external table, an incremental append) never meets stale downstream
    tables, while a deterministic rebuild (same fingerprint, same data) invalidates nothing. `rebuild` forces new
    builds (a scheduled refresh); their downstream follows.
    """
    models: dict[str, ModelPlan] = {}
    for name, node in project.nodes.items():
        fp = fingerprints[name]
        if not node.built:
            models[name] = ModelPlan(name, node.kind, fp, "external", f"external table {node.table}")
            continue
        checks = declared_checks(node)
        prev = state.published.get(name)
        prev_fp = prev.fingerprint if prev else None
        options = state.candidates.get((name, fp), ())
        # a restored upstream has the same data as before: it does not invalidate its downstream
        upstream_built = [d for d in node.deps if models[d].action == "build" and models[d].mode != "restore"]
        want = {d: models[d].build.data_version if models[d].build else models[d].fingerprint
                for d in node.deps if models[d].action != "external"}
        # forced: a scheduled refresh of this node, or of the external table it reads
        forced = name in rebuild or any(d in rebuild and models[d].action == "external" for d in node.deps)
        match = None
        if not forced and not upstream_built:
            match = next((b for b in options if b.inputs is None
                          or all(b.inputs.get(d) == bid for d, bid in want.items())), None)
        if match is not None:
            if prev is not None and prev.build_id == match.build_id:
                reason = "unchanged"
            else:
                reason = f"reuses build {match.build_id} made for commit {match.commit[:10]}"
            models[name] = ModelPlan(name, node.kind, fp, "reuse", reason, match, prev_fp,
                                     _check_plans(checks, match, state))
            continue
        mode, reason, base = _build_reason(name, node, fp, prev, options, upstream_built, forced,
                                           state.published_commit is not None)
        models[name] = ModelPlan(name, node.kind, fp, "build", reason, None, prev_fp,
                                 _check_plans(checks, None, state), mode, base)
    removed = tuple(sorted(set(state.published) - set(models)))
    return Plan(env, schema, commit, models, removed, state.published_commit)
