"""Machine-readable renderings of what the CLI shows: JSON documents (stable field names, see the
README's "Machine-readable output") and Markdown for pull-request comments. Pure: data in, text out."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from gitops_data.deployment.operations import Validation
from gitops_data.plan import Action, Mode, Plan
from gitops_data.project.columns import ColumnTrace

SCHEMA_VERSION = 1


def to_json(kind: str, body: dict[str, Any]) -> str:
    """One JSON document: `{"kind": ..., "version": 1, ...body}`."""

    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    return json.dumps({"kind": kind, "version": SCHEMA_VERSION, **body}, indent=2, default=default)


def plan_body(plan: Plan) -> dict[str, Any]:
    models = []
    for m in plan.models.values():
        models.append(
            {
                "model": m.name,
                "kind": m.kind,
                "materialized": m.materialized,
                "action": str(m.action),
                "mode": str(m.mode) if m.mode else None,
                "reason": m.reason,
                "fingerprint": m.fingerprint,
                "previous_fingerprint": m.previous_fingerprint,
                "build_id": m.build.build_id if m.build else None,
                "table": m.build.table if m.build else None,
                "file": m.location,
                "checks": [
                    {
                        "check": c.name,
                        "state": str(c.state),
                        "blocking": c.check.blocking,
                        "failed_rows": c.failed_rows,
                    }
                    for c in m.checks
                ],
            }
        )
    return {
        "env": plan.env,
        "schema": plan.schema,
        "commit": plan.commit,
        "previous_commit": plan.previous_commit,
        "models": models,
        "removed": list(plan.removed),
        "summary": plan_summary(plan),
        "column_impact": [
            {
                "model": i.model,
                "changed": list(i.changed),
                "downstream": [f"{m}.{c}" for m, c in i.downstream],
                "checks": [f"{m}.{c}" for m, c in i.checks],
                "unchecked": [f"{m}.{c}" for m, c in i.unchecked],
                "complete": i.complete,
            }
            for i in plan.impact
        ],
    }


def plan_summary(plan: Plan) -> dict[str, int]:
    """The plan's counts: the one summary the table, JSON and Markdown renderings show."""
    return {
        "to_build": len(plan.to_build),
        "keep_data": sum(1 for m in plan.models.values() if m.mode == Mode.ALIAS),
        "reused": sum(1 for m in plan.models.values() if m.action == Action.REUSE),
        "checks_to_rerun": sum(len(v) for v in plan.to_audit.values()),
        "removed": len(plan.removed),
        "blocking_failures": len(plan.failures()),
    }


def summary_text(plan: Plan, strong: tuple[str, str] = ("", "")) -> str:
    """The plan summary as one line (`strong`: markup around the blocking failures)."""
    s = plan_summary(plan)
    kept = f", {s['keep_data']} keep their data" if s["keep_data"] else ""
    failing = s["blocking_failures"]
    return (
        f"{s['to_build'] - s['keep_data']} to build{kept}, {s['reused']} reused, "
        f"{s['checks_to_rerun']} check(s) to re-run on reused builds, {s['removed']} to remove"
        + (f", {strong[0]}{failing} blocking check(s) failing{strong[1]}" if failing else "")
    )


def impact_lines(plan: Plan, code: tuple[str, str] = ("", "")) -> list[str]:
    """Per changed model, one line: the columns it touches, downstream, and the checks on them."""
    a, b = code

    def names(items: tuple) -> str:
        return ", ".join(f"{a}{m}.{c}{b}" for m, c in items)

    out = []
    for i in plan.impact:
        line = f"{a}{i.model}{b} changes {', '.join(f'{a}{c}{b}' for c in i.changed)}"
        line += (
            f"; downstream: {names(i.downstream)}" if i.downstream else "; no downstream column reads them"
        )
        line += f"; checked by {names(i.checks)}" if i.checks else "; no check covers them"
        if i.unchecked and i.checks:
            line += f"; unchecked: {names(i.unchecked)}"
        if not i.complete:
            line += " (some columns are unknown: there may be more)"
        out.append(line)
    return out


def schema_changes(d: Any) -> str:
    """A model diff's column changes as one text (table and Markdown)."""
    parts = [
        ", ".join("+" + c for c in d.columns_added),
        ", ".join("-" + c for c in d.columns_removed),
        ", ".join(d.columns_retyped),
    ]
    return "; ".join(p for p in parts if p)


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def plan_markdown(plan: Plan) -> str:
    body = plan_body(plan)
    rows = [
        [
            f"`{m['model']}`",
            m["mode"] or m["action"],
            m["reason"],
            ", ".join(f"{c['check']}: {c['state']}" for c in m["checks"] if c["state"] != "passed") or "",
        ]
        for m in body["models"]
        if m["action"] != "reuse" or any(c["state"] != "passed" for c in m["checks"])
    ]
    rows += [[f"`{name}`", "remove", "not in this commit", ""] for name in plan.removed]
    head = (
        f"### gitops-data plan: `{plan.env}` at `{plan.commit[:10]}` (schema `{plan.schema}`)\n\n"
        + summary_text(plan, ("**", "**"))
    )
    impact = impact_lines(plan, ("`", "`"))
    return (
        head
        + ("\n\n" + _md_table(["model", "action", "why", "checks"], rows) if rows else "\n\nNothing changes.")
        + ("\n\n**Columns touched**\n\n" + "\n".join(f"- {line}" for line in impact) if impact else "")
    )


def diff_body(env_a: str, env_b: str, diffs: list) -> dict[str, Any]:
    return {"env_a": env_a, "env_b": env_b, "models": [asdict(d) for d in diffs]}


def diff_markdown(env_a: str, env_b: str, diffs: list) -> str:
    rows = [
        [
            f"`{d.model}`",
            d.state,
            d.rows_a,
            d.rows_b,
            schema_changes(d),
        ]
        for d in diffs
    ]
    title = f"### gitops-data diff: `{env_a}` -> `{env_b}`\n\n"
    if not rows:
        return title + "Both serve the same builds."
    return title + _md_table(["model", "state", f"rows {env_a}", f"rows {env_b}", "schema changes"], rows)


def lineage_body(t: ColumnTrace) -> dict[str, Any]:
    """`lineage`'s JSON: the column, then each column upstream and downstream with its direct sources."""

    def rows(items: tuple) -> list[dict[str, Any]]:
        return [{"model": m, "column": c, "from": [f"{a}.{b}" for a, b in srcs]} for (m, c), srcs in items]

    return {
        "model": t.model,
        "column": t.column,
        "type": t.type,
        "complete": t.known,
        "upstream": rows(t.upstream),
        "downstream": rows(t.downstream),
    }


def validate_body(v: Validation) -> dict[str, Any]:
    """`validate`'s JSON: valid or not, every issue with file, line and model, or the counts."""
    if v.error is not None:
        issues = [
            {"file": i.file, "line": i.line, "model": i.model, "message": i.message} for i in v.error.issues
        ]
        return {"target": v.target, "valid": False, "issues": issues, "warehouse_note": v.warehouse_note}
    return {
        "target": v.target,
        "valid": True,
        "issues": [],
        "nodes": v.kinds,
        "schedules": v.schedules,
        "alerts": v.alerts,
        "column_notes": v.column_notes or {},
        "warehouse_note": v.warehouse_note,
    }
