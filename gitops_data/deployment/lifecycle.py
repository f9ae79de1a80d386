"""A commit's lifecycle, one set of rules for every entry point (CLI `sync`/`build`, the git_refs
sensor, YAML schedules, a run started from the UI):

    claim -> execute -> conclude (gate, publish, record, tag)

- One claim per (environment, commit): whoever plans first stores the plan as the claim; a second
  entry point joins that run (the CLI waits for it, a sensor tick or schedule leaves it be) and
  says so, instead of building again.
- The run that executes a plan concludes it, whatever its trigger; callers that wait read the
  concluded result from the plan's record.
- A claim whose run died (its process is gone, its Dagster run is gone or never started) is
  released, so the next entry point plans the commit again at once.
- Holds (a rollback, a checkout) bind every trigger, schedules included.

The typed states live with the other pure records (`plan.records`: Trigger, PlanState, Status).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from gitops_data.deployment.core import Environment
from gitops_data.errors import BuildError, GitopsError, PublishBlocked, Superseded
from gitops_data.plan import Plan, PlanState, Status, Trigger
from gitops_data.warehouse.catalog import PlanRow, now
from gitops_data.warehouse.publish import PublishRecord as PublishRecord  # the record callers are given

__all__ = [
    "REQUEST_GRACE",
    "ApplyResult",
    "Environment",
    "Liveness",
    "Owner",
    "PlanState",
    "RunState",
    "Trigger",
    "liveness",
]

RunState = Literal["active", "success", "failure"]
# a run requested by a sensor or schedule shows up in Dagster within a tick or two; past this, a
# claim whose run never started is released and the commit planned again
REQUEST_GRACE = timedelta(seconds=120)


def _start_time(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot), None if there is no such process.
    With the pid it names one process for the life of the host (pids are reused, start times not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc here: the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie has exited


@dataclass(frozen=True)
class Owner:
    """The process that executes or concludes a plan: host, pid and the process's start time."""

    host: str
    pid: int
    started: str

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _start_time(pid) or "")

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        if not text:
            return None
        host, pid, started = text.rsplit(":", 2)
        return cls(host, int(pid), started)

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.started}"

    def alive(self) -> bool | None:
        """Whether the process still runs; None when it is on another host (Dagster has to say)."""
        if self.host != socket.gethostname():
            return None
        started = _start_time(self.pid)
        if started is None:
            return False
        return not self.started or not started or started == self.started


class Liveness(StrEnum):
    """What became of the run that holds a claim."""

    ALIVE = "alive"  # its run is under way: join it
    WAITING = "waiting"  # requested, not started yet (within REQUEST_GRACE): join it
    FINISHED = "finished"  # its run ended without concluding it: conclude it from what it left
    DEAD = "dead"  # killed, gone or never started: release the claim and plan again


def liveness(row: PlanRow, run: RunState | None, at: datetime | None = None) -> tuple[Liveness, str]:
    """What became of the run of the active plan `row` (`run`: its Dagster run's state), and why."""
    owner = Owner.parse(row.owner)
    alive = owner.alive() if owner is not None else None
    who = f"{row.trigger.label}'s run" + (f" {row.run_id}" if row.run_id else "")
    if alive is False:
        where = f"process {owner.pid}" if owner else "process"
        return Liveness.DEAD, f"{who} was killed ({where} is gone); planned again"
    if row.state == PlanState.CONCLUDING or run == "active":
        return Liveness.ALIVE, f"{who} is building this commit"
    if run is not None:
        return Liveness.FINISHED, f"{who} ended without concluding"
    if alive:  # claimed by a live process whose run is not in this Dagster instance (yet)
        return Liveness.ALIVE, f"{who} is building this commit"
    if row.run_id is not None:
        return Liveness.DEAD, f"{who} is gone from Dagster; planned again"
    if (at or now()) - row.created_at < REQUEST_GRACE:
        return Liveness.WAITING, f"{who} was requested for this commit"
    return Liveness.DEAD, f"{who} never started; planned again"


@dataclass
class ApplyResult:
    """What the lifecycle decided for one ref."""

    ref: str
    env: Environment
    commit: str | None
    status: Status
    detail: str = ""
    plan: Plan | None = None
    publish: PublishRecord | None = None
    run_id: str | None = None
    request: Any = None
    failures: list[tuple[str, str, int | None]] = field(default_factory=list)
    warnings: list[tuple[str, str, int | None]] = field(default_factory=list)
    error: GitopsError | None = None
    joined: str | None = None  # the other entry point's run this result is the outcome of

    @property
    def outcome(self) -> str:
        """One line for the run's `gitops/outcome` tag: published, blocked: <checks>, failed, ..."""
        if self.status == Status.BLOCKED and self.failures:
            return "blocked: " + ", ".join(f"{m}.{c}" for m, c, _ in self.failures)[:200]
        return str(self.status)

    def raise_for_status(self) -> ApplyResult:
        """The error a CLI user should see for a commit that was not published."""
        if self.error is not None:
            raise self.error
        if self.status == Status.BLOCKED:
            raise PublishBlocked(f"not published: {self.detail}")
        if self.status == Status.FAILED:
            raise BuildError(self.detail)
        if self.status == Status.SUPERSEDED:
            raise Superseded(self.detail)
        if self.status == Status.BUILDING:
            raise GitopsError(f"not published yet: {self.detail}")
        return self

    def to_json(self) -> str:
        """What a caller that waits needs of a concluded plan (stored with the plan)."""
        pub = asdict(self.publish) if self.publish else None
        if pub is not None:
            pub["published_at"] = pub["published_at"].isoformat()
        body = {
            "status": str(self.status),
            "detail": self.detail,
            "run_id": self.run_id,
            "failures": self.failures,
            "warnings": self.warnings,
            "publish": pub,
            "error": _error_record(self.error),
        }
        return json.dumps(body)

    @classmethod
    def concluded(cls, row: PlanRow, plan: Plan | None) -> ApplyResult:
        """The result the run that executed `row`'s plan concluded."""
        env = Environment(row.env, plan.schema if plan else "")
        if not row.result:
            return cls(
                row.env, env, row.commit, row.outcome or Status.FAILED, row.reason, plan, run_id=row.run_id
            )
        body = json.loads(row.result)
        pub = body["publish"]
        if pub is not None:
            pub = PublishRecord(
                **{
                    **pub,
                    "changed": tuple(pub["changed"]),
                    "removed": tuple(pub["removed"]),
                    "published_at": datetime.fromisoformat(pub["published_at"]),
                }
            )
        return cls(
            row.env,
            env,
            row.commit,
            Status(body["status"]),
            body["detail"],
            plan,
            pub,
            body["run_id"],
            failures=[(m, c, n) for m, c, n in body["failures"]],
            warnings=[(m, c, n) for m, c, n in body["warnings"]],
            error=_error_from(body.get("error")),
        )


def _error_record(error: GitopsError | None) -> dict[str, str] | None:
    return None if error is None else {"type": type(error).__name__, "message": str(error)}


def _error_classes(root: type[GitopsError] = GitopsError) -> dict[str, type[GitopsError]]:
    out = {root.__name__: root}
    for sub in root.__subclasses__():
        out.update(_error_classes(sub))
    return out


def _error_from(record: dict[str, str] | None) -> GitopsError | None:
    """The stored error again, of its own class (its exit code and message; not its other fields)."""
    if record is None:
        return None
    cls = _error_classes().get(record["type"], GitopsError)
    error = cls.__new__(cls)
    Exception.__init__(error, record["message"])
    return error
