"""Pure: after a plan's steps ran, may its commit be published? Reads only what the steps left
(which planned builds exist, the audit results recorded for them); never plans again."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gitops_data.plan.records import Audits, audit_of
from gitops_data.plan.steps import Action, CheckState, Plan


@dataclass(frozen=True)
class Verdict:
    plan: Plan  # the plan with every check's state as the steps left it
    missing: list[str] = field(default_factory=list)  # models whose planned build was not made
    failures: list[tuple[str, str, int | None]] = field(default_factory=list)  # blocking checks failed
    warnings: list[tuple[str, str, int | None]] = field(default_factory=list)  # warn checks failed
    not_run: list[tuple[str, str]] = field(default_factory=list)  # blocking checks without a result

    @property
    def ready(self) -> bool:
        """Every planned build exists and every blocking check passed on it."""
        return not (self.missing or self.failures or self.not_run)


def gate(plan: Plan, existing: set[str], audits: Audits) -> Verdict:
    """`existing`: build ids of the plan that exist now; `audits`: the results recorded for them."""
    models = {}
    missing, not_run = [], []
    for name, step in plan.models.items():
        if step.action == Action.EXTERNAL or step.build is None:
            models[name] = step
            continue
        if step.build.build_id not in existing:
            missing.append(name)
        checks = []
        for pc in step.checks:
            rec = audit_of(audits, step.build.build_id, pc.name, pc.hash)
            if rec is None:
                checks.append(replace(pc, state=CheckState.PENDING))
                if pc.check.blocking:
                    not_run.append((name, pc.name))
            else:
                state = CheckState.PASSED if rec.passed else CheckState.FAILED
                checks.append(replace(pc, state=state, failed_rows=rec.failed_rows))
        models[name] = replace(step, checks=tuple(checks))
    concluded = replace(plan, models=models)
    return Verdict(
        concluded,
        missing,
        concluded.failures(blocking=True),
        concluded.failures(blocking=False),
        [nr for nr in not_run if nr[0] not in missing],
    )
