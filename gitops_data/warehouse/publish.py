"""Publish: point an environment's external schema at the builds of one commit, atomically.

Every view change, the drops of views the commit removed, and the catalog record of the publish
happen in one DuckDB transaction: readers see the old commit or the new one, never a mix, and a
crash before COMMIT leaves the old state served.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import duckdb

from gitops_data.errors import GitopsError
from gitops_data.naming import qualified, quote
from gitops_data.plan import Plan
from gitops_data.warehouse.catalog import ensure_catalog, internal_objects, now, published_builds
from gitops_data.warehouse.connection import transaction


@dataclass(frozen=True)
class PublishRecord:
    publish_id: str
    env: str
    schema: str
    commit: str
    previous_commit: str | None
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    published_at: datetime


def view_sql(internal: str, table: str) -> str:
    return f"select * from {qualified(internal, table)}"


def view_definitions(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, str]:
    """view name -> the definition DuckDB stores (what drift detection compares against)."""
    rows = con.execute(
        "select view_name, sql from duckdb_views() where schema_name = ? and not internal", [schema]
    ).fetchall()
    return dict(rows)


def external_objects(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, str]:
    """name -> 'VIEW' | 'TABLE' for everything in an external schema."""
    views = con.execute(
        "select view_name from duckdb_views() where schema_name = ? and not internal", [schema]
    ).fetchall()
    tables = con.execute("select table_name from duckdb_tables() where schema_name = ?", [schema]).fetchall()
    return {**{t[0]: "TABLE" for t in tables}, **{v[0]: "VIEW" for v in views}}


@dataclass(frozen=True)
class PublishTarget:
    """What to publish: an environment, a commit, and model -> (build id, physical table)."""

    env: str
    schema: str
    commit: str
    builds: dict[str, tuple[str, str]]
    rollback_of: str | None = None  # the publish id this one restores
    hold_head: str | None = None  # a rollback holds until the branch moves past this head


def publish(
    con: duckdb.DuckDBPyConnection, plan: Plan, internal: str, meta: str, run_id: str | None = None
) -> PublishRecord:
    """Flip `plan.schema` to the builds in `plan`. The plan must be `ready` (caller checks audits)."""
    if not plan.ready:
        raise ValueError("publish() called with a plan that is not ready")
    builds = {n: (mp.build.build_id, mp.build.table) for n, mp in plan.models.items() if mp.build is not None}
    return publish_builds(con, PublishTarget(plan.env, plan.schema, plan.commit, builds), internal, meta, run_id)


def publish_builds(
    con: duckdb.DuckDBPyConnection, target: PublishTarget, internal: str, meta: str, run_id: str | None = None
) -> PublishRecord:
    """The one publish transaction: views, drops, env_views, publish record, environment row."""
    ensure_catalog(con, meta)
    m = quote(meta)
    env, schema = target.env, target.schema
    builds = {n: b for n, (b, _) in target.builds.items()}
    views = {n: t for n, (_, t) in target.builds.items()}
    row = con.execute(f"select commit from {m}.environments where env = ?", [env]).fetchall()
    previous = row[0][0] if row else None
    before = {name: b.build_id for name, b in published_builds(con, meta, env).get(env, {}).items()}
    changed = tuple(sorted(n for n in builds if before.get(n) != builds[n]))
    ts = now()
    publish_id = uuid.uuid4().hex[:12]
    with transaction(con):
        con.execute(f"create schema if not exists {quote(schema)}")
        existing = external_objects(con, schema)
        for name, table in views.items():
            if existing.get(name) == "TABLE":
                con.execute(f"drop table {qualified(schema, name)}")
            con.execute(f"create or replace view {qualified(schema, name)} as {view_sql(internal, table)}")
        stale = tuple(sorted(n for n in existing if n not in views))
        for name in stale:
            con.execute(f"drop {existing[name]} {qualified(schema, name)}")
        definitions = view_definitions(con, schema)
        con.execute(f"delete from {m}.env_views where env = ?", [env])
        con.executemany(
            f"insert into {m}.env_views values (?, ?, ?, ?, ?)",
            [[env, n, builds[n], view_sql(internal, views[n]), definitions.get(n)] for n in views],
        )
        con.execute(
            f"insert into {m}.publishes values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [publish_id, env, schema, target.commit, previous, json.dumps(builds),
             json.dumps({"changed": list(changed), "removed": list(stale), "rollback_of": target.rollback_of}), run_id, ts],
        )
        con.execute(f"delete from {m}.environments where env = ?", [env])
        con.execute(f"insert into {m}.environments values (?, ?, ?, ?, ?)", [env, schema, target.commit, publish_id, ts])
        con.execute(f"delete from {m}.ref_status where env = ?", [env])
        if target.hold_head is None:
            con.execute(f"insert into {m}.ref_status values (?, ?, ?, 'published', '', ?)", [env, schema, target.commit, ts])
        else:  # the head stays unpublished until the branch moves (reconcile and sync respect it)
            con.execute(f"insert into {m}.ref_status values (?, ?, ?, 'rolled_back', ?, ?)",
                        [env, schema, target.hold_head, f"rolled back to publish {target.rollback_of} "
                         f"(commit {target.commit[:10]}); the next commit on the branch publishes", ts])
    return PublishRecord(publish_id, env, schema, target.commit, previous, changed, stale, ts)


def republish(con: duckdb.DuckDBPyConnection, env: str, publish_id: str, internal: str, meta: str,
              hold_head: str | None = None) -> PublishRecord:
    """Serve exactly what an earlier publish served (zero copy; incremental models and snapshots
    included, whose builds a commit alone does not pin). With `hold_head`, that head is not
    published again until the branch moves."""
    m = quote(meta)
    rows = con.execute(f"select schema_name, commit, builds from {m}.publishes where env = ? and publish_id = ?",
                       [env, publish_id]).fetchall()
    if not rows:
        raise GitopsError(f"environment {env!r} has no publish {publish_id!r} (see `gitops-data history`)")
    schema, commit, builds_json = rows[0]
    ids = json.loads(builds_json)
    present = internal_objects(con, internal)
    tables = {b: t for b, t in con.execute(
        f"select build_id, table_name from {m}.builds where list_contains(?, build_id)", [list(ids.values())]
    ).fetchall() if t in present}
    missing = sorted(model for model, b in ids.items() if b not in tables)
    if missing:
        raise GitopsError(f"publish {publish_id} can no longer be restored: builds of {', '.join(missing)} were collected")
    return publish_builds(con, PublishTarget(env, schema, commit, {n: (b, tables[b]) for n, b in ids.items()},
                                             publish_id, hold_head), internal, meta)


def unpublish(con: duckdb.DuckDBPyConnection, env: str, schema: str, meta: str) -> list[str]:
    """Drop an environment (its branch was deleted): its views and schema go, builds stay for gc."""
    ensure_catalog(con, meta)
    m = quote(meta)
    with transaction(con):
        dropped = list(external_objects(con, schema))
        con.execute(f"drop schema if exists {quote(schema)} cascade")
        for table in ("env_views", "environments", "ref_status"):
            con.execute(f"delete from {m}.{table} where env = ?", [env])
    return dropped
