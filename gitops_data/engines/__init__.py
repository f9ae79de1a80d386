"""Warehouse engines behind one interface (`Engine`); `open_warehouse` picks one for a location by
the registry (`locations.py`): a path is a DuckDB file (the embedded default), a `postgresql://`
URL a PostgreSQL database. What each engine can do is declared (`Engine.capabilities`).

Every connection holds the warehouse's lock (gitops-data processes take turns). Inside
`warehouse_turn`, the connections `open_warehouse` gives are one connection kept for the whole
block: connecting and closing cost more than most statements (a DuckDB close is a checkpoint).
The turn gives way when another gitops-data process asks for the warehouse: at the next
`open_warehouse` that is not nested in another, once it has held the warehouse for
GITOPS_DATA_CONNECTION_LEASE seconds (default 1), it closes, pauses long enough for the other
process's back-off to find the warehouse free, and connects again.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from collections.abc import Iterator
from pathlib import Path

from gitops_data.capabilities import Capabilities
from gitops_data.engines.base import Engine
from gitops_data.engines.locations import EngineKind, engine_dialect, engine_kind, is_url, redact

# Longer than the longest back-off sleep of a process waiting for the warehouse (2 x 0.5 s).
HANDOVER_SECONDS = 1.1


def lease_seconds() -> float:
    """The least a turn holds the warehouse before it gives way (GITOPS_DATA_CONNECTION_LEASE)."""
    return float(os.environ.get("GITOPS_DATA_CONNECTION_LEASE", "1"))


def _connect(location: str, timeout: float | None) -> contextlib.AbstractContextManager[Engine]:
    return engine_kind(location).open(location, timeout)


class Turn:
    """This process's hold of one warehouse across many uses (see the module docstring)."""

    def __init__(
        self,
        location: str,
        timeout: float | None = None,
        handover: float = HANDOVER_SECONDS,
        gives_way: bool = True,
    ):
        self.location, self.timeout, self.handover, self.gives_way = location, timeout, handover, gives_way
        self.seconds = lease_seconds()
        self._stack: contextlib.ExitStack | None = None
        self._engine: Engine | None = None
        self._since = 0.0
        self._resume_at = 0.0
        self.users = 0  # open_warehouse blocks (and plan runs' steps) using the connection now
        self.taken = 0  # how many times it connected: 1 + the times it gave way

    @contextlib.contextmanager
    def use(self) -> Iterator[Engine]:
        if self.users == 0 and self.due:
            self.give_way()
        self.users += 1
        try:
            yield self.engine()
        except BaseException:
            self.users -= 1
            if not self.users:  # the connection may be broken (a lost server): connect afresh next time
                self.close()
            raise
        self.users -= 1

    def engine(self) -> Engine:
        if self._engine is None:
            time.sleep(max(0.0, self._resume_at - time.monotonic()))
            self._stack = contextlib.ExitStack()
            self._engine = self._stack.enter_context(_connect(self.location, self.timeout))
            self._since = time.monotonic()
            self.taken += 1
        return self._engine

    @property
    def due(self) -> bool:
        """Whether another process asked for the warehouse and this turn has lasted long enough."""
        return (
            self.gives_way
            and self._engine is not None
            and time.monotonic() - self._since >= self.seconds
            and self._engine.turn_wanted()
        )

    def give_way(self) -> None:
        """Close and pause before the next connect (not while the connection is in use)."""
        if self.users:
            return
        self.close()
        self._resume_at = time.monotonic() + self.handover

    def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._engine = self._stack, None, None
            stack.close()


_turn: contextvars.ContextVar[Turn | None] = contextvars.ContextVar("gitops_turn", default=None)


@contextlib.contextmanager
def warehouse_turn(
    location: str | Path, timeout: float | None = None, gives_way: bool = True
) -> Iterator[Turn]:
    """Keep one connection to the warehouse at `location` for everything inside (see the module
    docstring); nested in a turn on the same warehouse, that turn. `gives_way=False`: hold it to
    the end (a short step, which would lose more by reconnecting)."""
    location = str(location)
    outer = _turn.get()
    if outer is not None and outer.location == location:
        yield outer
        return
    turn = Turn(location, timeout, gives_way=gives_way)
    token = _turn.set(turn)
    try:
        yield turn
    finally:
        _turn.reset(token)
        turn.close()


@contextlib.contextmanager
def open_warehouse(location: str | Path, timeout: float | None = None) -> Iterator[Engine]:
    """A short-lived connection to the warehouse at `location`, holding the warehouse's lock (inside
    a `warehouse_turn` on it: the turn's connection)."""
    location = str(location)
    turn = _turn.get()
    if turn is not None and turn.location == location:
        with turn.use() as engine:
            yield engine
        return
    with _connect(location, timeout) as engine:
        yield engine


__all__ = [
    "Capabilities",
    "Engine",
    "EngineKind",
    "Turn",
    "engine_dialect",
    "engine_kind",
    "is_url",
    "open_warehouse",
    "redact",
    "warehouse_turn",
]
