"""What the CLI prints for people: rich tables and lines over the results of deployment operations
(one rendering per result; JSON and Markdown are `render`'s)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gitops_data.deployment.operations import Validation
from gitops_data.errors import GitopsError
from gitops_data.plan import CheckState, Plan
from gitops_data.project.columns import ColumnTrace
from gitops_data.render import impact_lines, schema_changes, summary_text

# outside a terminal (a log, a pipe) nothing is cut or wrapped: lines are as long as their content
console = Console(highlight=False, width=None if sys.stdout.isatty() else 100_000)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 100_000)

STATE_LABELS = {
    "up_to_date": "[green]up to date[/]",
    "not_synced": "[yellow]not synced yet[/]",
    "branch_deleted": "[red]branch deleted[/] (views remain until the sensor drops them)",
    "building": "[yellow]building[/]",
    "blocked": "[red]blocked[/]",
    "invalid": "[red]invalid project[/]",
    "failed": "[red]build failed[/]",
    "superseded": "superseded",
    "rolled_back": "[yellow]rolled back[/]",
}


def short(sha: str | None) -> str:
    return sha[:10] if sha else "-"


def table(title: str, columns: list[str], keys: int) -> Table:
    """One row per item; the first `keys` columns (names, schemas, states) are never cut or wrapped,
    the others fold when the terminal is narrow."""
    t = Table(title=title)
    for i, col in enumerate(columns):
        t.add_column(col, no_wrap=i < keys, overflow="fold", min_width=len(col) if i < keys else None)
    return t


QUIET_ROWS = 20  # more models than this that reuse a build (or read an external table) with nothing
# to check are shown as one line per action, unless every row is asked for


def print_plan(plan: Plan, every_row: bool = False) -> None:
    title = f"plan for {plan.env} ({plan.schema}) at {short(plan.commit)}"
    t = table(title, ["model", "kind", "action", "fingerprint", "reason", "checks"], 3)
    colors = {"build": "yellow", "reuse": "green", "external": "dim", "inline": "dim"}
    labels = {
        "append": "append",
        "forward_only": "build (forward-only)",
        "refresh": "refresh",
        "restore": "rebuild",
        "alias": "keep data",
    }
    quiet = [
        m
        for m in plan.models.values()
        if m.action != "build" and not m.checks_in(CheckState.PENDING) and not m.checks_in(CheckState.FAILED)
    ]
    folded: dict[str, int] = {}
    if not every_row and len(quiet) > QUIET_ROWS:
        for m in quiet:
            folded[str(m.action)] = folded.get(str(m.action), 0) + 1
    hidden = {m.name for m in quiet} if folded else set()
    for m in plan.models.values():
        if m.name in hidden:
            continue
        pend, failed = m.checks_in(CheckState.PENDING), m.checks_in(CheckState.FAILED)
        checks = ", ".join(
            filter(
                None,
                [f"{len(pend)} to run" if pend else "", f"[red]{len(failed)} failed[/]" if failed else ""],
            )
        )
        fp = (
            m.fingerprint[:10]
            if m.previous_fingerprint in (None, m.fingerprint)
            else f"{m.previous_fingerprint[:10]} -> {m.fingerprint[:10]}"
        )
        action = labels.get(str(m.mode), m.action) if m.action == "build" else m.action
        t.add_row(
            m.name,
            m.kind if m.materialized == "table" else f"{m.kind} ({m.materialized})",
            f"[{colors[m.action]}]{action}[/]",
            fp,
            escape(m.reason),
            checks or ("ok" if m.checks else ""),
        )
    for action, count in sorted(folded.items()):
        what = "unchanged, checks passed" if action == "reuse" else "nothing to build or check"
        t.add_row(f"{count} models", "", f"[{colors[action]}]{action}[/]", "", what, "")
    for name in plan.removed:
        t.add_row(name, "", "[red]remove[/]", "", "not in this commit", "")
    console.print(t)
    if folded:
        n = sum(folded.values())
        console.print(f"[dim]{n} models folded into one line per action; `plan --all` lists them[/]")
    console.print(summary_text(plan, ("[red]", "[/]")))
    for line in impact_lines(plan):
        console.print(f"columns: {escape(line)}")


def print_status(report) -> None:
    """`status`: one row per environment (an operations.StatusReport), then the drift found."""
    columns = ["env (branch)", "schema", "published", "latest", "state"]
    t = table(f"environments of {report.repo} in {report.warehouse}", columns, 4)
    for e in report.environments:
        if e.state == "checkout":
            state = f"checkout (read-only, follows no branch): serves {short(e.published)}"
        else:
            state = STATE_LABELS.get(e.state, e.state)
            if e.state == "up_to_date" and e.drift:
                state += " [red](drift, see below)[/]"
            if e.reason and e.state not in ("up_to_date", "not_synced"):
                state += f": {escape(' '.join(e.reason.split())[:600])}"
        t.add_row(e.env, e.schema, short(e.published), short(e.head), state)
    console.print(t)
    for d in report.drift[:20]:
        console.print(f"[red]drift[/]: {escape(str(d))}")
    if report.drift:
        console.print(
            f"{len(report.drift)} change(s) outside Git: `gitops-data repair` restores the published state"
        )


def print_history(env: str, rows: list[dict]) -> None:
    columns = ["published at (UTC)", "publish id", "commit", "previous", "changed", "removed"]
    t = table(f"publishes of {env}", columns, 4)
    for r in rows:
        changed = r["changed"]
        t.add_row(
            f"{r['published_at']:%Y-%m-%d %H:%M:%S}",
            r["publish_id"],
            short(r["commit"]),
            short(r["previous_commit"]),
            (f"rollback to {r['rollback_of']}; " if r.get("rollback_of") else "")
            + f"{len(changed)}: "
            + ", ".join(changed),
            ", ".join(r["removed"]),
        )
    console.print(t)


def print_diff(env_a: str, env_b: str, diffs: list) -> None:
    if not diffs:
        console.print(f"{env_a} and {env_b} serve the same builds")
        return
    t = table(
        f"{env_a} -> {env_b}", ["model", "state", f"rows {env_a}", f"rows {env_b}", "schema changes"], 2
    )
    for d in diffs:
        schema = schema_changes(d)
        t.add_row(
            d.model,
            d.state,
            str(d.rows_a if d.rows_a is not None else "-"),
            str(d.rows_b if d.rows_b is not None else "-"),
            schema,
        )
    console.print(t)


def print_lineage(t: ColumnTrace) -> None:
    """`lineage` for people: the column, then what feeds it and what it feeds, one column a line."""
    console.print(f"[bold]{t.model}.{escape(t.column)}[/]" + (f" {t.type}" if t.type else ""))
    if not t.known:
        console.print(f"[dim]note[/]: {t.model}'s columns are not fully known; its lineage may be incomplete")
    for title, items, empty in (
        ("upstream (computed from)", t.upstream, "none: no column of another model feeds it"),
        ("downstream (computed from it)", t.downstream, "none: no model column reads it"),
    ):
        console.print(f"{title}:")
        for (m, c), sources in items:
            via = ", ".join(f"{a}.{b}" for a, b in sources)
            console.print(f"  {m}.{escape(c)}" + (f"  [dim]<- {escape(via)}[/]" if via else ""))
        if not items:
            console.print(f"  [dim]{empty}[/]")


def print_validation(v: Validation) -> None:
    """A valid project's counts, then one line per model whose columns could not be checked, and why."""
    summary = ", ".join(f"{n} {k}" for k, n in sorted(v.kinds.items()))
    console.print(
        f"[green]valid[/]: {v.target}: {v.nodes} nodes ({summary}), "
        f"{v.schedules} schedules, {v.alerts} alerts"
    )
    for model, note in (v.column_notes or {}).items():
        console.print(f"[dim]note[/]: {model}: {escape(note)}")
    if v.warehouse_note:
        console.print(f"[dim]note[/]: {escape(v.warehouse_note)}")


def print_notes(result) -> None:
    """What `sync` says of an ApplyResult before its outcome: whose run it joined, warn checks."""
    if result.joined:
        console.print(f"joined {result.joined}, which built {short(result.commit)}: {result.status}")
    for m, c, n in result.warnings:
        console.print(f"[yellow]warning[/]: check {m}.{c} failed ({n} rows) - severity warn, not blocking")


def print_published(result) -> None:
    """`sync`'s last line for an ApplyResult that was published, up to date or rolled back."""
    if result.status == "up_to_date":
        console.print(f"{result.env.schema} already serves {short(result.commit)}; nothing to do")
        return
    if result.status == "rolled_back":
        console.print(f"{result.env.schema}: {escape(result.detail)}")
        return
    pub = result.publish
    if pub is None:  # raise_for_status let through a status that publishes nothing
        raise GitopsError(f"{result.env.schema}: not published ({result.status}): {result.detail}")
    where = f"[green]published[/] {result.ref} @ {short(result.commit)} to schema {pub.schema}"
    if pub.previous_commit is None:
        console.print(f"{where} (new): {len(pub.changed)} view(s) created")
        return
    console.print(
        f"{where}: {len(pub.changed)} view(s) changed, {len(pub.removed)} removed "
        f"(previous {short(pub.previous_commit)})"
    )
