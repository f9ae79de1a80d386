"""Pure records the planner reads from the catalog, and the statuses every layer speaks in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    """Where an environment stands with one commit (the outcome of one `apply`)."""

    PUBLISHED = "published"
    UP_TO_DATE = "up_to_date"
    BUILDING = "building"  # a run was requested or is under way
    BLOCKED = "blocked"  # a blocking check failed: the last good commit stays served
    INVALID = "invalid"  # the project at the commit does not validate
    FAILED = "failed"  # a build failed (SQL error, crash)
    SUPERSEDED = "superseded"  # the ref moved on while this commit was being built
    ROLLED_BACK = "rolled_back"  # an explicit rollback holds until the branch moves
    DROPPED = "dropped"  # the branch is gone; its schema was dropped
    BUILT = "built"  # built and audited by `gitops-data build`, which does not publish

    @property
    def final(self) -> bool:
        """Decided for this head: nothing more happens until the branch moves."""
        return self in (Status.INVALID, Status.BLOCKED, Status.FAILED, Status.ROLLED_BACK)


class Trigger(StrEnum):
    """Who started work on a commit (stored with its plan; a run's `gitops/trigger` tag)."""

    SYNC = "cli"  # `gitops-data sync`: waits for its run and reads how it concluded
    BUILD = "cli-build"  # `gitops-data build`: builds and audits, never publishes
    GIT = "git"  # the git_refs sensor
    SCHEDULE = "schedule"  # a YAML schedule's tick
    UI = "ui"  # "Materialize" in the Dagster UI

    @property
    def publishes(self) -> bool:
        """Whether concluding its plan publishes (every trigger but `build`)."""
        return self is not Trigger.BUILD

    @property
    def label(self) -> str:
        return _TRIGGER_LABELS[self]


_TRIGGER_LABELS = {
    Trigger.SYNC: "`gitops-data sync`",
    Trigger.BUILD: "`gitops-data build`",
    Trigger.GIT: "the git_refs sensor",
    Trigger.SCHEDULE: "a schedule",
    Trigger.UI: "a run started from the UI",
}


class PlanState(StrEnum):
    """Where a stored plan is in its lifecycle: claim -> execute -> conclude (or released)."""

    OPEN = "open"  # it claims its (environment, commit): its run is requested or under way
    CONCLUDING = "concluding"  # the run that executed it is gating and publishing it
    CONCLUDED = "concluded"  # done; its outcome (a Status) says how
    RELEASED = "released"  # its run died (killed, gone, never started): the commit is free again

    @property
    def active(self) -> bool:
        """Whether the plan still holds its claim on its (environment, commit)."""
        return self in (PlanState.OPEN, PlanState.CONCLUDING)


@dataclass(frozen=True)
class BuildRecord:
    """One build: an immutable physical table (or segment view) in the internal schema."""

    build_id: str
    model: str
    fingerprint: str
    table: str
    commit: str
    run_id: str | None = None
    row_count: int | None = None
    created_at: datetime | None = None
    inputs: dict[str, str] | None = (
        None  # upstream model -> data version it was computed from (None: unknown)
    )
    version: str | None = (
        None  # data version: the fingerprint when the data follows from it, else the build id
    )

    @property
    def data_version(self) -> str:
        """Builds with equal data versions hold equal data. Deterministic builds (no external table
        upstream, no accumulated history) share their fingerprint as version; others are unique."""
        return self.version or self.fingerprint


@dataclass(frozen=True)
class AuditRecord:
    """The latest result of one check on one build."""

    build_id: str
    check: str
    check_hash: str
    passed: bool
    failed_rows: int | None = None


# build id -> (check name, check hash) -> the latest result of that check with that definition and
# those inputs on that build (environments that read other builds through a check keep their own)
Audits = dict[str, dict[tuple[str, str], AuditRecord]]


def audit_of(audits: Audits, build_id: str, check: str, check_hash: str) -> AuditRecord | None:
    return audits.get(build_id, {}).get((check, check_hash))


@dataclass(frozen=True)
class CatalogState:
    """What the planner needs from the catalog, for one environment."""

    # (model, fp) -> reusable builds, best first (published in this env, published elsewhere, newest)
    candidates: dict[tuple[str, str], tuple[BuildRecord, ...]] = field(default_factory=dict)
    audits: Audits = field(default_factory=dict)
    published: dict[str, BuildRecord] = field(default_factory=dict)  # model -> currently published build
    published_commit: str | None = None
    # what a model may keep the data of (an alias): the environment's published builds, or for a new
    # environment production's
    baseline: dict[str, BuildRecord] = field(default_factory=dict)
