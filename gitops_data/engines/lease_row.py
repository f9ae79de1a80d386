"""Turn-taking without advisory locks or transactions: a lease row in the warehouse.

For engines whose `capabilities.turns` is LEASE_ROW (no file to lock, no advisory lock). The table
`gitops_turns.lease` holds at most one live `hold` row: the process holding the warehouse. Its
heartbeat (a thread with its own connection) pushes the row's expiry forward; a holder that dies
stops beating, and once its row has expired the next process takes the warehouse.

Taking it needs nothing but single-statement INSERT, SELECT, UPDATE and DELETE, each visible to
every later statement once it returns: delete the expired rows; if a live hold is there, knock
(a `knock` row, which `turn_wanted` of the holder sees) and wait; else insert our hold, then read
the live holds: ours alone means we hold the warehouse, anything else means another process
inserted at the same time, so we delete ours and back off. Two processes cannot both see only
their own row: the second insert comes after the first read, so the second read sees both.

Expiry times are the clients' clocks: the expiry (GITOPS_DATA_LEASE_EXPIRY, default 60 s) must be
far longer than the clocks' skew and than the longest pause of a holder's process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from gitops_data.engines.backoff import Retry, with_backoff
from gitops_data.engines.base import Engine
from gitops_data.engines.holders import this_command
from gitops_data.errors import LeaseLost
from gitops_data.naming import quote

LEASE_SCHEMA = "gitops_turns"
LEASE_TABLE = f"{quote(LEASE_SCHEMA)}.{quote('lease')}"


def lease_expiry() -> float:
    """Seconds a hold lives without a heartbeat (GITOPS_DATA_LEASE_EXPIRY, default 60)."""
    return float(os.environ.get("GITOPS_DATA_LEASE_EXPIRY", "60"))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class LeaseRow:
    """One process's attempt at, then hold of, the warehouse's lease (see the module docstring)."""

    def __init__(self, engine: Engine, expiry: float | None = None, holder: str | None = None):
        self.engine = engine
        self.expiry = timedelta(seconds=lease_expiry() if expiry is None else expiry)
        self.token = uuid.uuid4().hex
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()} ({this_command()})"
        self.taken_at: datetime | None = None
        self._knocked = False

    def ensure_table(self) -> None:
        self.engine.create_schema(LEASE_SCHEMA)
        self.engine.execute(
            f"create table if not exists {LEASE_TABLE} (token varchar, holder varchar, kind varchar, "
            "taken_at timestamp, expires_at timestamp)"
        )

    def _live_holds(self, at: datetime) -> list[str]:
        rows = self.engine.fetchall(
            f"select token from {LEASE_TABLE} where kind = 'hold' and expires_at >= ?", [at]
        )
        return [r[0] for r in rows]

    def holder_now(self) -> str:
        """Who holds the lease and for how long (for the wait notices); "another process" if no one
        live does now."""
        at = _now()
        rows = self.engine.fetchall(
            f"select holder, taken_at from {LEASE_TABLE} where kind = 'hold' and expires_at >= ? "
            "and token <> ? order by taken_at limit 1",
            [at, self.token],
        )
        if not rows:
            return "another process"
        holder, taken = rows[0]
        return f"{holder} for {max(0.0, (at - taken).total_seconds()):.0f}s"

    def try_take(self) -> None:
        """Take the lease, or raise Retry (knocking once) when another process holds it."""
        at = _now()
        self.engine.execute(f"delete from {LEASE_TABLE} where expires_at < ?", [at])
        if self._live_holds(at):
            if self._knocked:  # a waiter's knock lives as long as it keeps waiting
                self.engine.execute(
                    f"update {LEASE_TABLE} set expires_at = ? where token = ? and kind = 'knock'",
                    [at + self.expiry, self.token],
                )
            else:
                self._insert("knock", at)
                self._knocked = True
            raise Retry("another gitops-data process holds the warehouse's lease")
        self._insert("hold", at)
        if self._live_holds(at) != [self.token]:
            self.engine.execute(f"delete from {LEASE_TABLE} where token = ? and kind = 'hold'", [self.token])
            raise Retry("another gitops-data process took the warehouse's lease at the same time")
        self.taken_at = at
        if self._knocked:
            self.engine.execute(f"delete from {LEASE_TABLE} where token = ? and kind = 'knock'", [self.token])
            self._knocked = False

    def _insert(self, kind: str, at: datetime) -> None:
        self.engine.execute(
            f"insert into {LEASE_TABLE} values (?, ?, ?, ?, ?)",
            [self.token, self.holder, kind, at, at + self.expiry],
        )

    def heartbeat(self, engine: Engine | None = None) -> None:
        """Push the hold's expiry forward (through `engine`, another connection, if given); LeaseLost
        if the hold is gone (it expired and another process took the warehouse)."""
        con = engine or self.engine
        at = _now()
        con.execute(
            f"update {LEASE_TABLE} set expires_at = ? where token = ? and kind = 'hold'",
            [at + self.expiry, self.token],
        )
        if not con.scalar(
            f"select count(*) from {LEASE_TABLE} where token = ? and kind = 'hold'", [self.token]
        ):
            raise LeaseLost(
                f"this process ({self.holder}) lost the warehouse's lease: its heartbeat stopped for over "
                f"{self.expiry.total_seconds():.0f}s and another process took it; what it was doing stopped "
                "part way (run it again)"
            )

    def turn_wanted(self) -> bool:
        """Whether another process knocked since this one took the lease."""
        return bool(
            self.engine.scalar(
                f"select count(*) from {LEASE_TABLE} where kind = 'knock' and token <> ? and expires_at >= ?",
                [self.token, _now()],
            )
        )

    def release(self) -> None:
        self.engine.execute(f"delete from {LEASE_TABLE} where token = ?", [self.token])
        self.taken_at = None


class Heartbeat:
    """A thread beating a held lease every third of its expiry, through its own connection; a lost
    lease is kept in `lost` (and raised by `check`)."""

    def __init__(self, lease: LeaseRow, connect: Callable[[], Engine]):
        self.lease, self.connect = lease, connect
        self.lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gitops-lease-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = self.lease.expiry.total_seconds() / 3
        engine = self.connect()
        try:
            while not self._stop.wait(interval):
                try:
                    self.lease.heartbeat(engine)
                except LeaseLost as exc:
                    self.lost = exc
                    return
        finally:
            engine.close()

    def check(self) -> None:
        if self.lost is not None:
            raise self.lost

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def lease_turn(
    engine: Engine, connect: Callable[[], Engine], timeout: float, expiry: float | None = None
) -> Iterator[LeaseRow]:
    """Hold the warehouse's lease through `engine` for the block (waiting with back-off up to
    `timeout` seconds, WarehouseBusy after), its heartbeat on a connection `connect()` opens.
    Raises LeaseLost at the end if the lease was lost on the way."""
    lease = LeaseRow(engine, expiry)
    lease.ensure_table()
    with_backoff(
        lease.try_take,
        timeout,
        0.01,
        0.5,
        f"the warehouse's lease stayed taken for {timeout:.0f}s by another gitops-data process ({{why}}); "
        "try again when the running build or publish has finished",
        lambda _: lease.holder_now(),
        "the warehouse's lease",
    )
    beat = Heartbeat(lease, connect).start()
    try:
        yield lease
    finally:
        beat.stop()
        with contextlib.suppress(Exception):  # a lost connection: the hold expires by itself
            lease.release()
    beat.check()
