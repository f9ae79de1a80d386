"""The `gitops-data` command. Heavy imports (dagster, pandera) happen only in commands that run builds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gitops_data.errors import DriftFound, GitopsError

# outside a terminal (a log, a pipe) nothing is cut or wrapped: lines are as long as their content
console = Console(highlight=False, width=None if sys.stdout.isatty() else 100_000)


err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 100_000)


def _table(title: str, columns: list[str], keys: int) -> Table:
    """One row per item; the first `keys` columns (names, schemas, states) are never cut or wrapped,
    the others fold when the terminal is narrow."""
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, no_wrap=i < keys, overflow="fold", min_width=len(col) if i < keys else None)
    return table


_DAGSTER_YAML = """# written by gitops-data: local SQLite storage, no telemetry
telemetry:
  enabled: false
"""


def dagster_instance():
    """The Dagster instance in DAGSTER_HOME (default: .gitops_data/dagster_home, created if missing)."""
    import dagster as dg

    from gitops_data.engines.duckdb import warehouse_lock

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path(".gitops_data/dagster_home").resolve())
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    # Two CLIs starting on a fresh home would race creating its SQLite schemas: serialize them.
    with warehouse_lock(Path(home) / ".gitops_data"):
        config = Path(home) / "dagster.yaml"
        if not config.exists():
            tmp = config.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(_DAGSTER_YAML)
            os.replace(tmp, config)
        return dg.DagsterInstance.get()


class _LazyExecutor:
    """The in-process Dagster executor, made only when something has to run (a sync with nothing to
    build never imports Dagster)."""

    synchronous = True

    def __init__(self, ws):
        self.ws = ws
        self._real = None

    def _get(self):
        if self._real is None:
            from gitops_data.orchestration.run import InProcessExecutor

            self._real = InProcessExecutor(self.ws, dagster_instance())
        return self._real

    def execute(self, plan, plan_id: str, trigger):
        return self._get().execute(plan, plan_id, trigger)

    def run_state(self, plan_id: str):
        return self._get().run_state(plan_id)

    def record(self, result) -> None:
        self._get().record(result)


class Ctx:
    def __init__(self, repo: str | None, warehouse: str | None):
        from gitops_data.deployment.core import Deployment

        self.ws = Deployment.from_env(repo, warehouse)


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "-"


def _format_option(*choices: str):
    """`--format`: `table` for people (the default), `json` (stable fields, see README) or `markdown`."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", *choices]),
        default="table",
        show_default=True,
        help="Output: table for people, " + " or ".join(choices) + " for programs and pull-request comments.",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--repo",
    envvar="GITOPS_DATA_REPO",
    default=None,
    show_envvar=True,
    help="The data repo (a local Git repository). [default: .]",
)
@click.option(
    "--warehouse",
    envvar="GITOPS_DATA_WAREHOUSE",
    default=None,
    show_envvar=True,
    help="A DuckDB file, or a PostgreSQL URL (postgresql://user@host:5432/db). "
    "[default: .gitops_data/warehouse.duckdb, relative to the current folder]",
)
@click.pass_context
def main(ctx: click.Context, repo: str | None, warehouse: str | None) -> None:
    """GitOps for data: a Git repo of YAML models drives a DuckDB or PostgreSQL warehouse through Dagster."""
    ctx.obj = Ctx(repo, warehouse)


@main.command()
@click.argument("path", required=False)
@click.option("--ref", help="Validate this commit/branch/tag of --repo instead of a folder.")
@_format_option("json")
@click.pass_obj
def validate(obj: Ctx, path: str | None, ref: str | None, fmt: str) -> None:
    """Check a project (a folder, or --ref of the repo): syntax, keys, references, cycles, SQL, Python.

    Exit codes: 0 valid, 2 invalid (every issue with file, line and model)."""
    from gitops_data.errors import ProjectError
    from gitops_data.render import to_json
    from gitops_data.spec.loader import load_project
    from gitops_data.spec.tree import DirTree, GitTree

    tree = GitTree(obj.ws.repo, obj.ws.resolve(ref), label=ref) if ref else DirTree(path or obj.ws.repo)
    try:
        project = load_project(tree, obj.ws.dialect)
    except ProjectError as exc:
        if fmt == "json":
            issues = [
                {"file": i.file, "line": i.line, "model": i.model, "message": i.message} for i in exc.issues
            ]
            print(to_json("validate", {"target": tree.label, "valid": False, "issues": issues}))
        raise
    kinds: dict[str, int] = {}
    for n in project.nodes.values():
        kinds[n.kind] = kinds.get(n.kind, 0) + 1
    if fmt == "json":
        body = {
            "target": tree.label,
            "valid": True,
            "issues": [],
            "nodes": kinds,
            "schedules": len(project.schedules),
            "alerts": len(project.alerts),
        }
        print(to_json("validate", body))
        return
    summary = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
    console.print(
        f"[green]valid[/]: {tree.label}: {len(project.nodes)} nodes ({summary}), "
        f"{len(project.schedules)} schedules, {len(project.alerts)} alerts"
    )


def _env_option(f):
    return click.option(
        "--env", "env_name", default=None, help="Environment (a branch name) to plan for. [default: the ref]"
    )(f)


def _print_plan(plan) -> None:
    title = f"plan for {plan.env} ({plan.schema}) at {_short(plan.commit)}"
    table = _table(title, ["model", "kind", "action", "fingerprint", "reason", "checks"], 3)
    colors = {"build": "yellow", "reuse": "green", "external": "dim", "inline": "dim"}
    labels = {
        "append": "append",
        "forward_only": "build (forward-only)",
        "refresh": "refresh",
        "restore": "rebuild",
        "alias": "keep data",
    }
    for m in plan.models.values():
        pend, failed = m.checks_in("pending"), m.checks_in("failed")
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
        action = labels.get(m.mode, m.action) if m.action == "build" else m.action
        table.add_row(
            m.name,
            m.kind if m.materialized == "table" else f"{m.kind} ({m.materialized})",
            f"[{colors[m.action]}]{action}[/]",
            fp,
            escape(m.reason),
            checks or ("ok" if m.checks else ""),
        )
    for name in plan.removed:
        table.add_row(name, "", "[red]remove[/]", "", "not in this commit", "")
    console.print(table)
    audits = sum(len(v) for v in plan.to_audit.values())
    aliases = sum(1 for m in plan.models.values() if m.mode == "alias")
    console.print(
        f"{len(plan.to_build) - aliases} to build, {aliases} keep their data, "
        f"{len(plan.models) - len(plan.to_build)} reused, "
        f"{audits} check(s) to re-run on reused builds, {len(plan.removed)} to remove"
    )


_full_option = click.option(
    "--full",
    is_flag=True,
    help="Rebuild the models an additive upstream change would let keep their data.",
)


@main.command()
@click.option("--ref", default=None, help="Branch, tag or commit. [default: the production ref]")
@_env_option
@_full_option
@_format_option("json", "markdown")
@click.pass_obj
def plan(obj: Ctx, ref: str | None, env_name: str | None, full: bool, fmt: str) -> None:
    """Show, per model, whether the commit needs a new build or reuses one, and why. Writes nothing."""
    from gitops_data import render

    ref, sha, env = _target(obj, ref, env_name)
    p = obj.ws.plan(sha, env, full=full)
    if fmt == "json":
        print(render.to_json("plan", render.plan_body(p)))
    elif fmt == "markdown":
        print(render.plan_markdown(p))
    else:
        _print_plan(p)


def _target(obj: Ctx, ref: str | None, env_name: str | None):
    from gitops_data.spec.loader import read_settings
    from gitops_data.spec.tree import GitTree

    ws = obj.ws
    if ref is None:
        head = ws.resolve("HEAD")
        ref = read_settings(GitTree(ws.repo, head)).production_ref
    sha = ws.resolve(ref)
    project = ws.project(sha)
    return ref, sha, ws.environment(env_name or ref, project.settings)


def _listen():
    from gitops_data import progress

    icons = {
        "building": "[dim]…[/]",
        "built": "[green]✓[/]",
        "check_passed": "  [green]✓[/]",
        "check_failed": "  [red]✗[/]",
    }

    def show(event: str, model: str, detail: str) -> None:
        if event == "check_passed":
            console.print(f"{icons[event]} {model}.{escape(detail.split(':')[0])}")
        elif event != "building":
            console.print(f"{icons.get(event, '-')} {model}: {escape(detail)}")

    return progress.listen(show)


@main.command()
@click.option("--ref", default=None, help="Branch, tag or commit. [default: the production ref]")
@_env_option
@_full_option
@click.pass_obj
def build(obj: Ctx, ref: str | None, env_name: str | None, full: bool) -> None:
    """Build (and audit) what the plan needs, as a Dagster run; does not publish."""
    from gitops_data.deployment.apply import apply
    from gitops_data.plan import Status, Trigger

    ref, sha, env = _target(obj, ref, env_name)
    p = obj.ws.plan(sha, env, full=full)
    _print_plan(p)
    if not p.has_work:
        console.print("nothing to build")
        return
    stop = _listen()
    try:
        result = apply(
            obj.ws, ref, _LazyExecutor(obj.ws), env_name=env.name, trigger=Trigger.BUILD, full=full
        )
    finally:
        stop()
    joined = f" (joined {result.joined})" if result.joined else ""
    console.print(f"Dagster run {result.run_id or '-'}{joined}: {result.status}: {escape(result.detail)}")
    if result.status == Status.FAILED:
        raise GitopsError(f"build failed: {result.detail}")


@main.command()
@click.option("--ref", default=None, help="Branch to sync. [default: the production ref]")
@_full_option
@click.pass_obj
def sync(obj: Ctx, ref: str | None, full: bool) -> None:
    """Plan, build, audit and publish a branch.

    Exit codes: 0 published or up to date, 2 invalid project, 3 blocked by checks, 4 build failed,
    5 warehouse busy or a publish conflict (an object of yours depends on a published view),
    6 superseded (the branch moved on while building)."""
    from gitops_data.deployment.apply import apply
    from gitops_data.plan import Status

    ref, sha, env = _target(obj, ref, None)
    stop = _listen()
    try:
        result = apply(obj.ws, ref, _LazyExecutor(obj.ws), full=full)
    finally:
        stop()
    if result.joined:
        console.print(f"joined {result.joined}, which built {_short(sha)}: {result.status}")
    for m, c, n in result.warnings:
        console.print(f"[yellow]warning[/]: check {m}.{c} failed ({n} rows) - severity warn, not blocking")
    result.raise_for_status()
    if result.status == Status.UP_TO_DATE:
        console.print(f"{env.schema} already serves {_short(sha)}; nothing to do")
        return
    if result.status == Status.ROLLED_BACK:
        console.print(f"{env.schema}: {escape(result.detail)}")
        return
    pub = result.publish
    if pub.previous_commit is None:
        console.print(
            f"[green]published[/] {ref} @ {_short(sha)} to schema {pub.schema} (new): "
            f"{len(pub.changed)} view(s) created"
        )
        return
    console.print(
        f"[green]published[/] {ref} @ {_short(sha)} to schema {pub.schema}: "
        f"{len(pub.changed)} view(s) changed, {len(pub.removed)} removed "
        f"(previous {_short(pub.previous_commit)})"
    )


@main.command()
@_format_option("json")
@click.pass_obj
def status(obj: Ctx, fmt: str) -> None:
    """Per environment: published commit, the ref's latest commit, and why they differ."""
    from gitops_data.spec.loader import read_settings
    from gitops_data.spec.tree import GitTree
    from gitops_data.warehouse.drift import detect_drift

    ws = obj.ws
    settings = read_settings(GitTree(ws.repo, ws.resolve("HEAD")))
    heads = ws.tracked_heads()
    with ws.catalog() as cat:
        envs = {e: (e, *v) for e, v in cat.environments().items()}
        statuses = cat.ref_statuses()
        checkouts = cat.checkouts()
        drifts = detect_drift(cat, settings.internal_schema)
    table = _table(
        f"environments of {ws.repo}", ["env (branch)", "schema", "published", "latest", "state"], 4
    )
    from gitops_data.naming import environment_schema

    rows = []
    for name in sorted(set(heads) | set(envs), key=lambda n: (n != settings.production_ref, n)):
        pub = envs.get(name)
        head = heads.get(name)
        st = statuses.get(name)
        schema = (
            pub[1] if pub else environment_schema(settings.external_schema, name, settings.production_ref)
        )
        drifted = any(d.env == name or name in d.env.split(", ") for d in drifts)
        if name in checkouts:
            state = f"checkout (read-only, follows no branch): serves {_short(pub[2] if pub else None)}"
        elif head is None:
            state = "[red]branch deleted[/] (views remain until the sensor drops them)"
        elif pub and pub[2] == head:
            state = "[green]up to date[/]" + (" [red](drift, see below)[/]" if drifted else "")
        elif st and st.commit == head:
            state = {
                "building": "[yellow]building[/]",
                "blocked": "[red]blocked[/]",
                "invalid": "[red]invalid project[/]",
                "failed": "[red]build failed[/]",
                "superseded": "superseded",
                "rolled_back": "[yellow]rolled back[/]",
            }.get(st.status, st.status)
            state += f": {escape(' '.join(st.reason.split())[:300])}" if st.reason else ""
        else:
            state = "[yellow]not synced yet[/]"
        table.add_row(name, schema, _short(pub[2]) if pub else "-", _short(head), state)
        rows.append(
            {
                "env": name,
                "schema": schema,
                "published": pub[2] if pub else None,
                "head": head,
                "state": _plain_state(pub, head, st, name in checkouts),
                "reason": st.reason if st and st.commit == head else "",
                "drift": drifted,
            }
        )
    if fmt == "json":
        from gitops_data.render import to_json

        print(to_json("status", {"environments": rows, "drift": [d.__dict__ for d in drifts]}))
        return
    console.print(table)
    for d in drifts[:20]:
        console.print(f"[red]drift[/]: {escape(str(d))}")
    if drifts:
        console.print(
            f"{len(drifts)} change(s) outside Git: `gitops-data repair` restores the published state"
        )


def _plain_state(pub, head: str | None, st, checkout: bool = False) -> str:
    """One word for an environment's state (json): the same decision as the table's."""
    if checkout:
        return "checkout"
    if head is None:
        return "branch_deleted"
    if pub and pub[2] == head:
        return "up_to_date"
    if st and st.commit == head:
        return str(st.status)
    return "not_synced"


def _settings_and_catalog(obj: Ctx):
    settings = obj.ws.production_settings()
    return settings, obj.ws.catalog()


@main.command()
@click.option("--env", "env_name", default=None, help="Environment (branch). [default: the production ref]")
@click.option("--limit", default=20, show_default=True)
@_format_option("json")
@click.pass_obj
def history(obj: Ctx, env_name: str | None, limit: int, fmt: str) -> None:
    """Publishes of an environment: when, which commit, which models changed."""

    settings, conn = _settings_and_catalog(obj)
    env_name = env_name or settings.production_ref
    with conn as cat:
        rows = cat.history(env_name, limit)
    if fmt == "json":
        from gitops_data.render import to_json

        print(to_json("history", {"env": env_name, "publishes": rows}))
        return
    columns = ["published at (UTC)", "publish id", "commit", "previous", "changed", "removed"]
    table = _table(f"publishes of {env_name}", columns, 4)
    for r in rows:
        changed = r["changed"]
        table.add_row(
            f"{r['published_at']:%Y-%m-%d %H:%M:%S}",
            r["publish_id"],
            _short(r["commit"]),
            _short(r["previous_commit"]),
            (f"rollback to {r['rollback_of']}; " if r.get("rollback_of") else "")
            + f"{len(changed)}: "
            + ", ".join(changed),
            ", ".join(r["removed"]),
        )
    console.print(table)


@main.command()
@click.option("--env", "env_name", default=None, help="Environment (branch). [default: the production ref]")
@click.option("--to", "target", required=True, help="A publish id (see `history`) or a commit it published.")
@click.pass_obj
def rollback(obj: Ctx, env_name: str | None, target: str) -> None:
    """Serve exactly what an earlier publish served (zero copy; incremental models included).

    The environment's branch is not changed: the next commit on it publishes as usual. To make a
    rollback permanent, `git revert` on the branch."""
    from gitops_data import gitrepo
    from gitops_data.warehouse.publish import republish

    settings, conn = _settings_and_catalog(obj)
    env_name = env_name or settings.production_ref
    with conn as cat:
        matches = [
            r
            for r in cat.history(env_name, 1000)
            if r["publish_id"].startswith(target) or r["commit"].startswith(target)
        ]
        if not matches:
            raise GitopsError(
                f"no publish of {env_name!r} matches {target!r}; see `gitops-data history --env {env_name}`"
            )
        head = gitrepo.branch_heads(obj.ws.repo, env_name).get(env_name)
        record = republish(
            cat,
            env_name,
            matches[0]["publish_id"],
            settings.internal_schema,
            head,
            consumers=tuple(settings.consumers),
        )
    console.print(
        f"[green]rolled back[/] {env_name} to publish {matches[0]['publish_id']} "
        f"(commit {_short(record.commit)}): "
        f"{len(record.changed)} view(s) changed"
    )


@main.command()
@click.argument("target", required=False)
@click.option("--as", "name", default=None, help="Name of the environment. [default: at_<short sha>]")
@click.option(
    "--drop", "drop", default=None, metavar="NAME", help="Remove a checkout (its schema and views)."
)
@click.pass_obj
def checkout(obj: Ctx, target: str | None, name: str | None, drop: str | None) -> None:
    """Serve a retained commit (or publish id) as its own read-only environment, zero copy.

    Its schema is `<external schema>__<name>`; it follows no branch, and its builds are kept from gc
    until `checkout --drop NAME`. Exit codes: 0 served or dropped, 1 unknown target or name."""
    from gitops_data.naming import check_identifier
    from gitops_data.warehouse.publish import republish, unpublish

    settings, conn = _settings_and_catalog(obj)
    heads = obj.ws.tracked_heads()
    with conn as cat:
        if drop is not None:
            env = f"checkout:{drop}"
            found = cat.checkouts().get(env)
            if found is None:
                raise GitopsError(f"no checkout {drop!r}; see `gitops-data status`")
            dropped = unpublish(cat, env, found[0])
            console.print(f"dropped checkout {drop}: schema {found[0]} ({len(dropped)} views)")
            return
        if not target:
            raise GitopsError("name a commit or a publish id to check out (see `gitops-data history`)")
        hit = cat.find_publish(target)
        if hit is None:
            raise GitopsError(
                f"no publish of any environment matches {target!r}: only published commits are retained "
                "(see `gitops-data history --env <branch>`)"
            )
        source_env, publish_id, commit = hit
        name = check_identifier(name or f"at_{commit[:10]}", "checkout name")
        schema = f"{settings.external_schema}__{name}"
        taken = {env_schema(settings, ref) for ref in heads} | {s for s, _, _ in cat.environments().values()}
        if schema in taken:
            raise GitopsError(f"schema {schema} is already an environment's; choose another name with --as")
        record = republish(
            cat,
            source_env,
            publish_id,
            settings.internal_schema,
            into=(f"checkout:{name}", schema),
            consumers=tuple(settings.consumers),
        )
        cat.add_checkout(f"checkout:{name}", schema, commit, record.publish_id)
    console.print(
        f"[green]checked out[/] {_short(commit)} (publish {publish_id} of {source_env}) as schema {schema}: "
        f"{len(record.changed)} view(s), zero copy; `gitops-data checkout --drop {name}` removes it"
    )


def env_schema(settings, ref: str) -> str:
    from gitops_data.naming import environment_schema

    return environment_schema(settings.external_schema, ref, settings.production_ref)


@main.command()
@click.argument("env_a")
@click.argument("env_b")
@_format_option("json", "markdown")
@click.pass_obj
def diff(obj: Ctx, env_a: str, env_b: str, fmt: str) -> None:
    """Which models differ between two environments (branches), with row count and schema changes."""
    from gitops_data import render
    from gitops_data.warehouse.inspect import diff_envs

    settings, conn = _settings_and_catalog(obj)
    with conn as cat:
        diffs = diff_envs(cat, env_a, env_b)
    if fmt == "json":
        print(render.to_json("diff", render.diff_body(env_a, env_b, diffs)))
        return
    if fmt == "markdown":
        print(render.diff_markdown(env_a, env_b, diffs))
        return
    if not diffs:
        console.print(f"{env_a} and {env_b} serve the same builds")
        return
    table = _table(
        f"{env_a} -> {env_b}", ["model", "state", f"rows {env_a}", f"rows {env_b}", "schema changes"], 2
    )
    for d in diffs:
        schema = "; ".join(
            filter(
                None,
                [
                    "+" + ", +".join(d.columns_added) if d.columns_added else "",
                    "-" + ", -".join(d.columns_removed) if d.columns_removed else "",
                    ", ".join(d.columns_retyped),
                ],
            )
        )
        table.add_row(
            d.model,
            d.state,
            str(d.rows_a if d.rows_a is not None else "-"),
            str(d.rows_b if d.rows_b is not None else "-"),
            schema,
        )
    console.print(table)


@main.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be dropped.")
@click.pass_obj
def gc(obj: Ctx, dry_run: bool) -> None:
    """Drop builds that no environment serves and no retained publish needs (see `retention`)."""
    from gitops_data.warehouse.inspect import collect_garbage

    settings, conn = _settings_and_catalog(obj)
    with conn as cat:
        report = collect_garbage(cat, settings, dry_run)
    verb = "would drop" if dry_run else "dropped"
    for b in report.dropped:
        console.print(
            f"{verb} {settings.internal_schema}.{b.table} (commit {_short(b.commit)}, {b.row_count} rows)"
        )
    console.print(f"{verb} {len(report.dropped)} build(s); kept {report.kept}")
    for t in report.orphans:
        console.print(f"[yellow]not in the catalog[/] (left alone): {settings.internal_schema}.{t}")


@main.command()
@_format_option("json")
@click.pass_obj
def drift(obj: Ctx, fmt: str) -> None:
    """Report changes made to the warehouse outside Git (exit 7 if there are any)."""
    from gitops_data.warehouse.drift import detect_drift

    settings, conn = _settings_and_catalog(obj)
    with conn as cat:
        found = detect_drift(cat, settings.internal_schema)
    if fmt == "json":
        from gitops_data.render import to_json

        print(to_json("drift", {"drift": [d.__dict__ for d in found]}))
    else:
        for d in found:
            console.print(f"[red]drift[/]: {escape(str(d))}")
    if any(d.kind != "invalid_build_served" for d in found):
        raise DriftFound(
            f"{len(found)} change(s) outside Git; `gitops-data repair` restores the published views"
        )
    if found:
        raise DriftFound(
            f"{len(found)} build(s) await their rebuild: run `gitops-data sync` for the environment(s) above"
        )
    if fmt != "json":
        console.print("no drift: the warehouse matches what was published")


@main.command()
@click.pass_obj
def repair(obj: Ctx) -> None:
    """Restore published views (dropping objects made by hand); builds whose tables were changed are
    marked invalid, so the next `sync` rebuilds them."""
    from gitops_data.warehouse.drift import detect_drift
    from gitops_data.warehouse.drift import repair as do_repair

    settings, conn = _settings_and_catalog(obj)
    with conn as cat:
        found = detect_drift(cat, settings.internal_schema)
        do_repair(cat, found, tuple(settings.consumers))
    for d in found:
        fixed = d.kind != "table_changed"
        console.print(
            ("[green]restored[/]: " if fixed else "[yellow]marked for rebuild (run sync)[/]: ")
            + escape(str(d))
        )
    console.print(f"{len(found)} drift(s) handled")


def entry() -> int:
    """Run the CLI; user errors print one clear message (no traceback) and set the exit code."""
    try:
        main.main(standalone_mode=False)
    except click.exceptions.Abort:
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except GitopsError as exc:  # ProjectError included: its message lists every issue
        err.print("[red]error[/]: " + escape(str(exc)))
        return exc.exit_code
    except Exception as exc:
        # the warehouse's own errors (duckdb, psycopg: a lost connection...) and a full disk: one line
        if not isinstance(exc, OSError | RuntimeError) and not type(exc).__module__.startswith(
            ("psycopg", "duckdb", "adbc_driver")
        ):
            raise
        err.print(f"[red]error[/]: {type(exc).__name__}: " + escape(" ".join(str(exc).split())))
        return 1
    return 0


def cli_main() -> None:
    sys.exit(entry())


if __name__ == "__main__":
    cli_main()
