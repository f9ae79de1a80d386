"""Case pg3: publishing on PostgreSQL while 4 readers query the published views in a loop.

On two identical copies of the built DAG (case pg1's database, copied with CREATE DATABASE ...
TEMPLATE, and its repo): commit a change of `user_segments` and `sync` (its downstream is rebuilt,
then published), then `git revert` it and `sync` again (nothing is built: the earlier builds are
published again). On one copy 4 reader processes query the views during both syncs; the other copy
has no readers (the baseline column). Each reader query reads two views that must agree within one
commit: the number of 'vip' users in `user_segments` and the 'vip' row of `segment_summary` (the
change moves the vip threshold, so the two commits give different numbers). 0 errors and 0 mixed
results are required.
"""

from __future__ import annotations

from bench import pg
from bench.dag import CHANGED_MODEL, SEGMENT_RULE, SEGMENT_RULE_CHANGED, Scenario, built_pg_dag
from bench.datarepo import copy_scenario
from bench.readers import describe, problems
from bench.report import Row
from cases.one_change import expected_rebuilds

ID = "pg3"
TITLE = "PostgreSQL: publish while readers query"
ENGINE = "postgres"
READERS = 4
SCHEMA = "analytics"
READER_SQL = (
    f"select (select count(*) from {SCHEMA}.user_segments where segment = 'vip'), "
    f"coalesce((select users from {SCHEMA}.segment_summary where segment = 'vip'), 0)"
)


def _scenario(ctx, base: Scenario, label: str) -> Scenario:
    url = pg.database(ctx, f"readers_{label}", template_url=str(base.warehouse))
    return Scenario(copy_scenario(base.root, ctx.work / f"pg_readers_{label}"), url)


def _syncs(ctx, sc: Scenario, label: str, readers: int) -> dict:
    """The change (rebuild + publish), then its revert (publish only), each a measured sync."""
    kwargs = {**sc.kwargs(), "ref": "main", "readers": readers, "reader_sql": READER_SQL}
    sc.repo.replace("models.yml", SEGMENT_RULE, SEGMENT_RULE_CHANGED)
    sha = sc.repo.commit(f"change {CHANGED_MODEL}")
    expected = expected_rebuilds(str(sc.repo.path), sha, CHANGED_MODEL)
    change = ctx.child("bench.steps:sync_ref", name=f"pg_readers_{label}_change", **kwargs)
    if set(change["built"]) != expected:
        raise AssertionError(f"expected builds of {sorted(expected)}, the sync built {change['built']}")
    sc.repo.git("revert", "--no-edit", "HEAD")
    revert = ctx.child("bench.steps:sync_ref", name=f"pg_readers_{label}_revert", **kwargs)
    if revert["built"] or not revert["changed"]:
        raise AssertionError(
            f"the revert should publish without building: built {revert['built']}, "
            f"changed {revert['changed']}"
        )
    return {"change": change, "revert": revert, "rebuilt": sorted(expected)}


def run(ctx) -> list[Row]:
    try:
        pg.server(ctx)
    except pg.NoServer as exc:
        return [Row(ID, TITLE, status="skipped", notes=str(exc))]
    base, _ = built_pg_dag(ctx)
    quiet = _syncs(ctx, _scenario(ctx, base, "quiet"), "quiet", 0)
    busy = _syncs(ctx, _scenario(ctx, base, "busy"), "busy", READERS)
    rows = []
    for key, letter, what in (
        ("change", "a", f"change {CHANGED_MODEL}, sync ({len(busy['rebuilt'])} rebuilt + publish)"),
        ("revert", "b", "revert it, sync (publish only: nothing built)"),
    ):
        o, b = busy[key], quiet[key]
        stats = o["readers"]
        wrong = problems(stats)
        if len(stats["states"]) < 2 and not wrong:
            wrong = "no reader saw the publish (one state only)"
        rows.append(
            Row(
                f"{ID}{letter}",
                f"PostgreSQL {what} while {READERS} readers query, {ctx.sizes.dag_rows:,} rows",
                o["seconds"],
                b["seconds"],
                target="0 errors, 0 mixed",
                status="error" if wrong else "ok",
                ours_mb=o["peak_mb"],
                baseline_mb=b["peak_mb"],
                notes=("FAILED: " + wrong + "; " if wrong else "")
                + f"{describe(stats)}; {len(o['changed'])} views changed; baseline: the same sync on an "
                "identical copy of the database with no readers",
                details={"readers": stats},
            )
        )
    return rows
