"""A plan run's connections: the run's turn on the warehouse (`engines.warehouse_turn`) plus one
sibling connection for each step running at the same time. When another gitops-data process asks
for the warehouse, the run lets its running steps finish and gives way (`due`, `release`).

Used from one thread only (the run's scheduler); the siblings it lends go to worker threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

from gitops_data.engines import Turn
from gitops_data.warehouse.catalog import Catalog


class ConnectionLease:
    """`borrow` a connection for a step, `give_back` (or `discard`) it after."""

    def __init__(self, opener: Callable[[], AbstractContextManager[Catalog]], turn: Turn):
        self.opener, self.turn = opener, turn
        self._stack: contextlib.ExitStack | None = None
        self._primary: Catalog | None = None
        self._siblings: list[Catalog] = []
        self._idle: list[Catalog] = []

    def borrow(self) -> Catalog:
        """A sibling of the turn's connection (connected first when the run does not hold it)."""
        if self._primary is None:
            self._stack = contextlib.ExitStack()
            self._primary = self._stack.enter_context(self.opener())
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
        """Whether the run should give the warehouse to a process that asked for it (not while code
        around the run holds a connection of the turn: it would lose it)."""
        return self.turn.due and self.turn.users <= (1 if self._primary is not None else 0)

    def release(self) -> None:
        """Close every connection (no step may be running) and give the warehouse away for a turn."""
        self._close()
        self.turn.give_way()

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
