"""The `gitops-data` command: click parsing, then a deployment operation, then its rendering
(`console` for people, `render` for JSON and Markdown). It decides nothing. Heavy imports (dagster,
pandera) happen only in commands that run builds. A new command: one function below."""

from __future__ import annotations

import functools
import gc as garbage_collector
import os
import sys
from functools import cached_property

import click
from rich.markup import escape

from gitops_data.console import console, err, short
from gitops_data.deployment import operations as ops
from gitops_data.errors import BuildError, DriftFound, GitopsError


class _Process:
    """What the console script's process may skip, as it ends after its one command (`entry()`
    called in another process, a test's, skips nothing)."""

    one_shot = False  # set by cli_main
    exit_at_once = False  # the command holds nothing to close: end without freeing object by object

    @classmethod
    def read_only(cls) -> None:
        """A command that reads and prints (validate): no cyclic GC while it loads the project (it
        keeps what it makes), and no teardown of it at exit (a third of a second at 1,000 models)."""
        if cls.one_shot:
            garbage_collector.disable()
            cls.exit_at_once = True


class _Runner:
    """The in-process Dagster runner, made only when something has to run or be recorded (a sync
    with nothing to do never imports Dagster)."""

    synchronous = True

    def __init__(self, dep):
        self.dep, self._real = dep, None

    def _get(self):
        if self._real is None:
            from gitops_data.orchestration.instance import dagster_instance
            from gitops_data.orchestration.run import InProcessExecutor

            self._real = InProcessExecutor(self.dep, dagster_instance())
        return self._real

    def execute(self, plan, plan_id: str, trigger):
        return self._get().execute(plan, plan_id, trigger)

    def run_state(self, plan_id: str):
        return self._get().run_state(plan_id)

    def record(self, result) -> None:
        self._get().record(result)

    def record_publish(self, record, why: str) -> None:
        from gitops_data.orchestration.run import record_publish

        record_publish(self._get().instance, self.dep, record, why)


class _Named:
    """The repo and warehouse the options name; the Deployment over them is made (and the repo
    checked to be a data repo) at first use: `validate DIR` needs none."""

    def __init__(self, repo: str | None, warehouse: str | None):
        self.repo, self.warehouse = repo, warehouse

    @cached_property
    def dep(self):
        from gitops_data.deployment.core import Deployment

        return Deployment.from_env(self.repo, self.warehouse)


def pass_dep(command):
    """Hand `command` the Deployment as its first argument."""

    @click.pass_obj
    @functools.wraps(command)
    def run(named: _Named, *args, **kwargs):
        return command(named.dep, *args, **kwargs)

    return run


def _json(kind: str, body: dict) -> None:
    from gitops_data.render import to_json

    print(to_json(kind, body))


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


_ref_option = click.option("--ref", default=None, help="Branch, tag or commit. [default: the production ref]")
_env_option = click.option(
    "--env", "env_name", default=None, help="Environment (a branch name). [default: the ref / production]"
)
_full_option = click.option(
    "--full", is_flag=True, help="Rebuild the models an additive upstream change would let keep their data."
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
    ctx.obj = _Named(repo, warehouse)


@main.command()
@click.argument("path", required=False)
@click.option("--ref", help="Validate this commit/branch/tag of --repo instead of a folder.")
@_format_option("json")
@click.pass_obj
def validate(named: _Named, path: str | None, ref: str | None, fmt: str) -> None:
    """Check a project (a folder, or --ref of the repo): syntax, keys, references, cycles, SQL, Python.

    Exit codes: 0 valid, 2 invalid (every issue with file, line and model)."""
    from gitops_data.deployment.core import Deployment

    _Process.read_only()

    dep = named.dep if ref or not path else Deployment.from_env(named.repo, named.warehouse, False)
    v = ops.validate(dep, path, ref)
    if fmt == "json":
        from gitops_data.render import validate_body

        _json("validate", validate_body(v))
    elif v.error is None:
        from gitops_data.console import print_validation

        print_validation(v)
    if v.error is not None:
        if v.warehouse_note and fmt != "json":
            err.print(f"note: {escape(v.warehouse_note)}")
        raise v.error


@main.command()
@_ref_option
@_env_option
@_full_option
@_format_option("json", "markdown")
@click.option(
    "--all",
    "every_row",
    is_flag=True,
    help="List every model (a large plan folds the reused ones into one line).",
)
@pass_dep
def plan(dep, ref: str | None, env_name: str | None, full: bool, fmt: str, every_row: bool) -> None:
    """Show, per model, whether the commit needs a new build or reuses one, and why. Writes nothing."""
    from gitops_data import console as c
    from gitops_data import render

    p = ops.plan(dep, ops.target(dep, ref, env_name), full)
    if fmt == "json":
        _json("plan", render.plan_body(p))
    elif fmt == "markdown":
        print(render.plan_markdown(p))
    else:
        c.print_plan(p, every_row)


@main.command()
@click.argument("column")
@_ref_option
@_format_option("json")
@pass_dep
def lineage(dep, column: str, ref: str | None, fmt: str) -> None:
    """The columns MODEL.COLUMN is computed from and the columns computed from it, from the SQL alone."""
    from gitops_data import console as c
    from gitops_data import render

    trace = ops.lineage(dep, ref, column)
    if fmt == "json":
        _json("lineage", render.lineage_body(trace))
    else:
        c.print_lineage(trace)


def _listen():
    from gitops_data import progress

    icons = {"built": "[green]✓[/]", "check_passed": "  [green]✓[/]", "check_failed": "  [red]✗[/]"}

    def show(event: str, model: str, detail: str) -> None:
        if event == "check_passed":
            console.print(f"{icons[event]} {model}.{escape(detail.split(':')[0])}")
        elif event == "failed":  # its error is the command's own, printed once when it ends
            console.print(f"[red]✗[/] {model}: failed (the error follows at the end)")
        elif event != "building":
            console.print(f"{icons.get(event, '-')} {model}: {escape(detail)}")

    return progress.listen(show)


def _apply(dep, t, trigger, full: bool):
    from gitops_data.deployment.apply import apply

    stop = _listen()
    try:
        return apply(dep, t.ref, _Runner(dep), env_name=t.env.name, trigger=trigger, full=full)
    finally:
        stop()


@main.command()
@_ref_option
@_env_option
@_full_option
@pass_dep
def build(dep, ref: str | None, env_name: str | None, full: bool) -> None:
    """Build (and audit) what the plan needs, as a Dagster run; does not publish."""
    from gitops_data.console import print_plan
    from gitops_data.plan import Status, Trigger

    t = ops.target(dep, ref, env_name)
    p = ops.plan(dep, t, full)
    print_plan(p)
    if not p.has_work:
        console.print("nothing to build")
        return
    result = _apply(dep, t, Trigger.BUILD, full)
    joined = f" (joined {result.joined})" if result.joined else ""
    if result.status == Status.FAILED:  # the error says it, once
        console.print(f"Dagster run {result.run_id or '-'}{joined}: {result.status}")
        raise BuildError(result.detail)
    console.print(f"Dagster run {result.run_id or '-'}{joined}: {result.status}: {escape(result.detail)}")


@main.command()
@click.option("--ref", default=None, help="Branch to sync. [default: the production ref]")
@_full_option
@pass_dep
def sync(dep, ref: str | None, full: bool) -> None:
    """Plan, build, audit and publish a branch.

    Exit codes: 0 published or up to date, 2 invalid project, 3 blocked by checks, 4 build failed,
    5 warehouse busy or a publish conflict (an object of yours depends on a published view),
    6 superseded (the branch moved on while building)."""
    from gitops_data.console import print_notes, print_published
    from gitops_data.plan import Trigger

    result = _apply(dep, ops.target(dep, ref), Trigger.SYNC, full)
    print_notes(result)
    print_published(result.raise_for_status())


@main.command()
@_format_option("json")
@pass_dep
def status(dep, fmt: str) -> None:
    """Per environment: published commit, the ref's latest commit, and why they differ."""
    from dataclasses import asdict

    from gitops_data.console import print_status

    report = ops.status(dep)
    if fmt == "json":
        envs, drifts = [asdict(e) for e in report.environments], [asdict(d) for d in report.drift]
        _json("status", {"warehouse": report.warehouse, "environments": envs, "drift": drifts})
    else:
        print_status(report)


@main.command()
@_env_option
@click.option("--limit", default=20, show_default=True)
@_format_option("json")
@pass_dep
def history(dep, env_name: str | None, limit: int, fmt: str) -> None:
    """Publishes of an environment: when, which commit, which models changed."""
    from gitops_data.console import print_history

    env, rows = ops.history(dep, env_name, limit)
    if fmt == "json":
        _json("history", {"env": env, "publishes": rows})
    else:
        print_history(env, rows)


@main.command()
@_env_option
@click.option("--to", "target", required=True, help="A publish id (see `history`) or a commit it published.")
@pass_dep
def rollback(dep, env_name: str | None, target: str) -> None:
    """Serve exactly what an earlier publish served (zero copy; incremental models included).

    The environment's branch is not changed: the next commit on it publishes as usual. To make a
    rollback permanent, `git revert` on the branch."""
    done = ops.rollback(dep, env_name, target)
    _Runner(dep).record_publish(done.record, f"rolled back to publish {done.publish_id}")
    console.print(
        f"[green]rolled back[/] {done.env} to publish {done.publish_id} "
        f"(commit {short(done.record.commit)}): {len(done.record.changed)} view(s) changed"
    )


@main.command()
@click.argument("target", required=False)
@click.option("--as", "name", default=None, help="Name of the environment. [default: at_<short sha>]")
@click.option(
    "--drop", "drop", default=None, metavar="NAME", help="Remove a checkout (its schema and views)."
)
@pass_dep
def checkout(dep, target: str | None, name: str | None, drop: str | None) -> None:
    """Serve a retained commit (or publish id) as its own read-only environment, zero copy.

    Its schema is `<external schema>__<name>`; it follows no branch, and its builds are kept from gc
    until `checkout --drop NAME`. Exit codes: 0 served or dropped, 1 unknown target or name."""
    if drop is not None:
        schema, dropped = ops.drop_checkout(dep, drop)
        console.print(f"dropped checkout {drop}: schema {schema} ({len(dropped)} views)")
        return
    if not target:
        raise GitopsError("name a commit or a publish id to check out (see `gitops-data history`)")
    done = ops.checkout(dep, target, name)
    console.print(
        f"[green]checked out[/] {short(done.commit)} (publish {done.publish_id} of {done.source_env}) "
        f"as schema {done.schema}: {len(done.record.changed)} view(s), zero copy; "
        f"`gitops-data checkout --drop {done.name}` removes it"
    )


@main.command()
@click.argument("env_a")
@click.argument("env_b")
@_format_option("json", "markdown")
@pass_dep
def diff(dep, env_a: str, env_b: str, fmt: str) -> None:
    """Which models differ between two environments (branches), with row count and schema changes."""
    from gitops_data import render
    from gitops_data.console import print_diff

    diffs = ops.diff(dep, env_a, env_b)
    if fmt == "json":
        _json("diff", render.diff_body(env_a, env_b, diffs))
    elif fmt == "markdown":
        print(render.diff_markdown(env_a, env_b, diffs))
    else:
        print_diff(env_a, env_b, diffs)


@main.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be dropped.")
@pass_dep
def gc(dep, dry_run: bool) -> None:
    """Drop builds that no environment serves and no retained publish needs (see `retention`)."""
    report, internal = ops.gc(dep, dry_run), dep.settings.internal_schema
    verb = "would drop" if dry_run else "dropped"
    for b in report.dropped:
        console.print(f"{verb} {internal}.{b.table} (commit {short(b.commit)}, {b.row_count} rows)")
    console.print(f"{verb} {len(report.dropped)} build(s); kept {report.kept}")
    for t in report.dropped_orphans:
        console.print(f"{verb} {internal}.{t} (a build's table whose catalog row never came)")
    for t in report.orphans:
        console.print(f"[yellow]not in the catalog[/] (left alone): {internal}.{t}")


@main.command()
@_format_option("json")
@pass_dep
def drift(dep, fmt: str) -> None:
    """Report changes made to the warehouse outside Git (exit 7 if there are any)."""
    found = ops.drift(dep)
    if fmt == "json":
        _json("drift", {"drift": [d.__dict__ for d in found]})
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
@pass_dep
def repair(dep) -> None:
    """Restore published views (dropping objects made by hand); builds whose tables were changed are
    marked invalid, so the next `sync` rebuilds them."""
    found = ops.repair(dep)
    for d in found:
        fixed = d.kind != "table_changed"
        label = "[green]restored[/]: " if fixed else "[yellow]marked for rebuild (run sync)[/]: "
        console.print(label + escape(str(d)))
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
    _Process.one_shot = True
    code = entry()
    if _Process.exit_at_once:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:  # a reader that went away (`| head`): nothing more to say to it
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    cli_main()
