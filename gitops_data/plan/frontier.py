"""Which build steps of a plan can run now (pure): a step waits for the steps whose builds it reads;
independent steps may run at the same time; a step downstream of one that stopped (its build
failed, or a blocking check failed) is skipped, and so is everything downstream of it."""

from __future__ import annotations

from dataclasses import dataclass

from gitops_data.plan.steps import Action, ModelStep, Plan


@dataclass(frozen=True)
class Skipped:
    step: ModelStep
    upstream: tuple[str, ...]  # the stopped steps it reads


class Frontier:
    """The state of a plan's build steps while they run: waiting, running, finished or stopped."""

    def __init__(self, plan: Plan):
        self._steps = [s for s in plan.models.values() if s.action not in (Action.EXTERNAL, Action.INLINE)]
        runs = {s.name for s in self._steps}
        self._waits = {
            s.name: {r.model for r in s.reads if r.planned and r.model in runs} for s in self._steps
        }
        # what waits for a step, directly or not: the more, the sooner it should start
        below: dict[str, set[str]] = {s.name: set() for s in self._steps}
        for step in reversed(self._steps):
            for up in self._waits[step.name]:
                below[up] |= {step.name} | below[step.name]
        self._priority = {name: len(down) for name, down in below.items()}
        self._started: set[str] = set()
        self._finished: set[str] = set()
        self.stopped: set[str] = set()

    def take(self, limit: int) -> tuple[list[ModelStep], list[Skipped]]:
        """Up to `limit` steps that can start now (marked started), those with the most steps
        downstream first, and the steps skipped because something they read stopped (marked
        stopped)."""
        ready: list[ModelStep] = []
        skipped: list[Skipped] = []
        for step in self._steps:  # plan order is dependency order: a skip reaches its downstream in one pass
            name = step.name
            if name in self._started:
                continue
            stopped = tuple(sorted(self._waits[name] & self.stopped))
            if stopped:  # at once, whatever else it still waits for
                self._started.add(name)
                self.finish(name, stopped=True)
                skipped.append(Skipped(step, stopped))
            elif self._waits[name] <= self._finished:
                ready.append(step)
        ready = sorted(ready, key=lambda s: -self._priority[s.name])[:limit]  # stable: plan order next
        self._started.update(s.name for s in ready)
        return ready, skipped

    def finish(self, name: str, stopped: bool = False) -> None:
        self._finished.add(name)
        if stopped:
            self.stopped.add(name)

    @property
    def done(self) -> bool:
        return len(self._finished) == len(self._steps)
