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

    candidates: dict[tuple[str, str], BuildRecord] = field(default_factory=dict)  # (model, fp) -> reusable build
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

    `rebuild` forces new builds (a scheduled refresh of data from external tables); their
    downstream is rebuilt too, since it was computed from the old data.
    """
    forced = project.downstream(set(rebuild)) if rebuild else set()
    models: dict[str, ModelPlan] = {}
    for name, node in project.nodes.items():
        fp = fingerprints[name]
        if not node.built:
            models[name] = ModelPlan(name, node.kind, fp, "external", f"external table {node.table}")
            continue
        checks = declared_checks(node)
        prev = state.published.get(name)
        prev_fp = prev.fingerprint if prev else None
        candidate = state.candidates.get((name, fp))
        if name in forced:
            reason = "scheduled refresh" if name in rebuild else "upstream refreshed"
            models[name] = ModelPlan(name, node.kind, fp, "build", reason, None, prev_fp, _check_plans(checks, None, state))
        elif candidate is not None:
            if prev is not None and prev.build_id == candidate.build_id:
                reason = "unchanged"
            else:
                reason = f"reuses build {candidate.build_id} made for commit {candidate.commit[:10]}"
            models[name] = ModelPlan(
                name, node.kind, fp, "reuse", reason, candidate, prev_fp, _check_plans(checks, candidate, state)
            )
        else:
            if prev is None:
                reason = "new model" if state.published_commit else "first build"
            elif prev_fp != fp:
                reason = f"fingerprint changed ({prev_fp[:10]} -> {fp[:10]})"
            else:
                reason = "its build is gone; rebuilding"
            models[name] = ModelPlan(name, node.kind, fp, "build", reason, None, prev_fp, _check_plans(checks, None, state))
    removed = tuple(sorted(set(state.published) - set(models)))
    return Plan(env, schema, commit, models, removed, state.published_commit)
