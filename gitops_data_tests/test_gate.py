"""The gate (pure): after a plan's steps ran, what the catalog holds decides publish / block / fail."""

from __future__ import annotations

from gitops_data.plan import (
    Action,
    AuditRecord,
    BuildRecord,
    CheckState,
    ModelStep,
    Plan,
    PlannedCheck,
    Read,
    gate,
)
from gitops_data.project.checks import DeclaredCheck

GE = DeclaredCheck("v__ge", "ge", "v", 0, "error", "v: ge 0")
WARN = DeclaredCheck("v__le", "le", "v", 9, "warn", "v: le 9")
REL = DeclaredCheck(
    "relationship",
    "relationship",
    None,
    {"column": "id", "to": "dim", "field": "id"},
    "error",
    "relationship",
    ("dim",),
)


def _build(model: str, build_id: str) -> BuildRecord:
    return BuildRecord(build_id, model, "f" * 64, f"{model}__ffffffffffff__{build_id}", "c" * 40)


def _plan() -> Plan:
    dim = ModelStep("dim", "sql", "f" * 64, Action.BUILD, "first build", _build("dim", "d1"))
    read = Read("dim", '"gitops_internal"."dim__ffffffffffff__d1"', "d1", "f" * 64, planned=True)
    fct = ModelStep(
        "fct",
        "sql",
        "f" * 64,
        Action.BUILD,
        "first build",
        _build("fct", "f1"),
        checks=(
            PlannedCheck(GE, CheckState.PENDING, "h_ge"),
            PlannedCheck(WARN, CheckState.PENDING, "h_le"),
            PlannedCheck(REL, CheckState.PENDING, "h_rel", (read,)),
        ),
        file="models/fct.yml",
        line=3,
    )
    return Plan("main", "analytics", "c" * 40, "gitops_internal", {"dim": dim, "fct": fct})


def _audits(**passed: tuple[bool, str]) -> dict:
    return {
        "f1": {(name, h): AuditRecord("f1", name, h, ok, 0 if ok else 2) for name, (ok, h) in passed.items()}
    }


def test_all_built_and_passed_is_ready_warn_failures_reported():
    v = gate(
        _plan(),
        {"d1", "f1"},
        _audits(v__ge=(True, "h_ge"), v__le=(False, "h_le"), relationship=(True, "h_rel")),
    )
    assert v.ready and v.failures == [] and v.warnings == [("fct", "v__le", 2)]
    assert v.plan.models["fct"].checks_in(CheckState.PASSED) == ["v__ge", "relationship"]


def test_a_failed_blocking_check_blocks_and_names_the_file():
    v = gate(
        _plan(),
        {"d1", "f1"},
        _audits(v__ge=(False, "h_ge"), v__le=(True, "h_le"), relationship=(True, "h_rel")),
    )
    assert not v.ready and v.failures == [("fct", "v__ge", 2)]
    assert v.plan.blocked_reason() == "blocking checks failed: fct.v__ge (2 rows) at models/fct.yml:3"


def test_a_result_for_another_definition_or_other_inputs_does_not_count():
    # the relationship ran against another build of `dim` (another hash): it has to run again
    v = gate(
        _plan(), {"d1", "f1"}, _audits(v__ge=(True, "h_ge"), v__le=(True, "h_le"), relationship=(True, "old"))
    )
    assert not v.ready and v.not_run == [("fct", "relationship")] and v.failures == []


def test_a_missing_build_fails_unless_a_blocking_check_explains_it():
    v = gate(
        _plan(), {"f1"}, _audits(v__ge=(True, "h_ge"), v__le=(True, "h_le"), relationship=(True, "h_rel"))
    )
    assert v.missing == ["dim"] and not v.ready
    v = gate(_plan(), set(), {})
    assert v.missing == ["dim", "fct"] and v.not_run == []  # checks of a missing build are not "not run"


def test_a_plan_survives_its_json_round_trip():
    plan = _plan()
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.models["fct"].checks[2].reads[0].planned and again.models["fct"].checks[2].check.reads == (
        "dim",
    )
