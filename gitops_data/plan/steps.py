"""The plan as data: one typed step per model (build / reuse / external) with the checks it still
needs, carrying everything execution needs and nothing it has to decide.

Build steps have their build id and physical table fixed when the plan is made, so a downstream
step's SQL already names the exact tables it reads, and a check that reads another model names the
exact build it compares against. Plans are stored in the catalog (JSON) and executed by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import TypeAdapter

from gitops_data.plan.impact import ColumnImpact
from gitops_data.plan.records import BuildRecord
from gitops_data.project.checks import DeclaredCheck
from gitops_data.project.columns import Lineage


class Action(StrEnum):
    BUILD = "build"
    REUSE = "reuse"
    EXTERNAL = "external"
    INLINE = "inline"  # an ephemeral model: its SQL goes into its downstream models' SQL


class Mode(StrEnum):
    """How a build step makes its build."""

    FULL = "full"
    REFRESH = "refresh"  # same definition, fresh data (a scheduled rebuild, or new upstream data)
    RESTORE = "restore"  # same definition and data; the old table is gone
    APPEND = "append"  # a new segment on `base`
    FORWARD_ONLY = "forward_only"  # a changed definition continues `base`'s history
    ALIAS = "alias"  # same data as `base` (its upstream only gained columns it does not read): a new
    # catalog record of base's table, no data written


class CheckState(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    PENDING = "pending"  # not run on this build (for this definition and these inputs) yet


@dataclass(frozen=True)
class Read:
    """One table a step reads: an upstream build (or external table) or a check's other model."""

    model: str
    table: str  # qualified, ready to go into SQL
    build_id: str | None = None  # None: an external table
    version: str | None = None  # data version of that build
    planned: bool = False  # made by this plan: its step must run first


@dataclass(frozen=True)
class PlannedCheck:
    check: DeclaredCheck
    state: CheckState
    hash: str  # the definition's hash, plus the data versions of the other models it reads
    reads: tuple[Read, ...] = ()
    failed_rows: int | None = None

    @property
    def name(self) -> str:
        return self.check.name


@dataclass(frozen=True)
class ModelStep:
    """What happens to one model: its build (reused or to make), and its checks."""

    name: str
    kind: str
    fingerprint: str
    action: Action
    reason: str
    build: BuildRecord | None = None  # reused, or the one this step makes (id and table fixed here)
    previous_fingerprint: str | None = None
    checks: tuple[PlannedCheck, ...] = ()
    mode: Mode | None = None  # build steps only
    base: BuildRecord | None = None  # segmented builds: the build the new segment goes on
    reads: tuple[Read, ...] = ()
    sql: str | None = None  # the model's query (a snapshot: its source) with every read swapped in
    materialized: str = "table"  # table | view | ephemeral
    file: str = ""
    line: int | None = None
    served: bool = False  # a reuse of the very build the environment serves now
    lineage: Lineage = ()  # per output column: the upstream (model, column)s it is computed from

    def checks_in(self, state: CheckState) -> list[str]:
        return [c.name for c in self.checks if c.state == state]

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Plan:
    env: str
    schema: str
    commit: str
    internal_schema: str
    models: dict[str, ModelStep]
    removed: tuple[str, ...] = ()
    previous_commit: str | None = None
    impact: tuple[ColumnImpact, ...] = ()  # per changed model: the columns it touches, their checks

    @property
    def to_build(self) -> list[str]:
        return [m.name for m in self.models.values() if m.action == Action.BUILD]

    @property
    def pending_checks(self) -> dict[str, list[str]]:
        """model -> checks to run: all checks of a new build, pending ones of a reused build."""
        return {
            m.name: m.checks_in(CheckState.PENDING)
            for m in self.models.values()
            if m.checks_in(CheckState.PENDING)
        }

    @property
    def to_audit(self) -> dict[str, list[str]]:
        """Reused builds whose current checks have not run on them yet (model -> check names)."""
        return {n: cs for n, cs in self.pending_checks.items() if self.models[n].action == Action.REUSE}

    @property
    def has_work(self) -> bool:
        return bool(self.to_build or self.pending_checks)

    def failures(self, blocking: bool = True) -> list[tuple[str, str, int | None]]:
        return [
            (m.name, c.name, c.failed_rows)
            for m in self.models.values()
            for c in m.checks
            if c.state == CheckState.FAILED and c.check.blocking == blocking
        ]

    def blocked_reason(self) -> str:
        return "blocking checks failed: " + ", ".join(
            f"{m}.{c}" + (f" ({n} rows)" if n else "") + f" at {self.models[m].location}"
            for m, c, n in self.failures(blocking=True)
        )

    @property
    def ready(self) -> bool:
        """Every model has a build and every blocking check of every build passed."""
        return all(
            m.action in (Action.EXTERNAL, Action.INLINE)
            or (
                m.action == Action.REUSE
                and all(c.state == CheckState.PASSED or not c.check.blocking for c in m.checks)
            )
            for m in self.models.values()
        )

    @property
    def views(self) -> dict[str, str]:
        """model -> physical table, for every model the environment serves."""
        return {m.name: m.build.table for m in self.models.values() if m.build is not None}

    @property
    def unchanged(self) -> bool:
        """Same commit as served, and every model serves the build it serves now."""
        return (
            self.commit == self.previous_commit
            and not self.removed
            and all(
                m.action in (Action.EXTERNAL, Action.INLINE) or (m.action == Action.REUSE and m.served)
                for m in self.models.values()
            )
        )

    def to_json(self) -> str:
        return _ADAPTER.dump_json(self).decode()

    @staticmethod
    def from_json(text: str | bytes) -> Plan:
        return _ADAPTER.validate_json(text)


_ADAPTER: TypeAdapter[Plan] = TypeAdapter(Plan)
