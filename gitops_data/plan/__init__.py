"""Planning: what a commit needs in an environment, as typed steps (pure: no I/O)."""

from gitops_data.plan.gate import Verdict, gate
from gitops_data.plan.planner import make_plan, new_build_id
from gitops_data.plan.records import AuditRecord, BuildRecord, CatalogState, PlanState, Status, Trigger
from gitops_data.plan.steps import Action, CheckState, Mode, ModelStep, Plan, PlannedCheck, Read

__all__ = [
    "Action",
    "AuditRecord",
    "BuildRecord",
    "CatalogState",
    "CheckState",
    "Mode",
    "ModelStep",
    "Plan",
    "PlanState",
    "PlannedCheck",
    "Read",
    "Status",
    "Trigger",
    "Verdict",
    "gate",
    "make_plan",
    "new_build_id",
]
