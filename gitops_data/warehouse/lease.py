"""A plan run's turn on the warehouse: one connection (holding the warehouse lock) kept from step
to step, plus sibling connections for the steps that run at the same time. Connecting and closing
cost more than a small model's SQL (a DuckDB close is a checkpoint), so the run keeps its turn
until another gitops-data process asks for the warehouse; then, after at least `seconds`, it lets
the running steps finish, closes everything and pauses long enough for the other process (which
polls with back-off) to take its turn.

Used from one thread only (the run's scheduler); the siblings it lends go to worker threads.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from gitops_data.warehouse.catalog import Catalog

# Longer than the longest back-off sleep of a process waiting for the warehouse (2 x 0.5 s).
HANDOVER_SECONDS = 1.1


def lease_seconds() -> float:
    """The least a plan run keeps its turn before it gives way (GITOPS_DATA_CONNECTION_LEASE,
    default 1 s)."""
    return float(os.environ.get("GITOPS_DATA_CONNECTION_LEASE", "1"))


class ConnectionLease:
    """The run's connections: `borrow` one for a step, `give_back` (or `discard`) it after."""

    def __init__(
        self,
        opener: Callable[[], AbstractContextManager[Catalog]],
        seconds: float,
        handover: float = HANDOVER_SECONDS,
    ):
        self.opener, self.seconds, self.handover = opener, seconds, handover
        self._stack: contextlib.ExitStack | None = None
        self._primary: Catalog | None = None
        self._siblings: list[Catalog] = []
        self._idle: list[Catalog] = []
        self._since = 0.0
        self._resume_at = 0.0
        self.turns = 0  # how many times the run took the warehouse (1 + the turns it gave away)

    def borrow(self) -> Catalog:
        """A connection for one step (a sibling of the run's connection, which is opened first
        when the run does not hold the warehouse)."""
        if self._primary is None:
            time.sleep(max(0.0, self._resume_at - time.monotonic()))
            self._stack = contextlib.ExitStack()
            self._primary = self._stack.enter_context(self.opener())
            self._since = time.monotonic()
            self.turns += 1
        if self._idle:
            return self._idle.pop()
        sibling = self._primary.over(self._primary.engine.sibling())
        self._siblings.append(sibling)
        return sibling

    def give_back(self, catalog: Catalog) -> None:
        self._idle.append(catalog)

    def discard(self, catalog: Catalog) -> None:
        """Close a sibling whose step failed (its connection may be broken)."""
        self._siblings.remove(catalog)
        with contextlib.suppress(Exception):
            catalog.engine.close()

    @property
    def due(self) -> bool:
        """Whether the run should give the warehouse to the process that asked for it."""
        return (
            self._primary is not None
            and time.monotonic() - self._since >= self.seconds
            and self._primary.engine.turn_wanted()
        )

    def release(self) -> None:
        """Close every connection (no step may be running) and let another process have a turn."""
        self._close()
        self._resume_at = time.monotonic() + self.handover

    def _close(self) -> None:
        siblings, self._siblings, self._idle = self._siblings, [], []
        for sibling in siblings:
            with contextlib.suppress(Exception):
                sibling.engine.close()
        if self._stack is not None:
            stack, self._stack, self._primary = self._stack, None, None
            stack.close()

    def __enter__(self) -> ConnectionLease:
        return self

    def __exit__(self, *exc) -> None:
        self._close()
