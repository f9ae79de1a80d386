"""The catalog: gitops-data's own state tables in the warehouse (builds, audits, publishes, envs).

Keeping the catalog in the same DuckDB file as the data is what makes a publish atomic: the view
flips and the record of the publish commit in one transaction.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from gitops_data.naming import quote
from gitops_data.plan import AuditRecord, BuildRecord, CatalogState
from gitops_data.warehouse.connection import transaction

# Everything a build can be in the internal schema: a table, or (segmented builds) a view.
OBJECTS = """(select schema_name, table_name from duckdb_tables()
             union all select schema_name, view_name from duckdb_views() where not internal)"""


def internal_objects(con: duckdb.DuckDBPyConnection, internal: str) -> dict[str, str]:
    """name -> 'TABLE' | 'VIEW' of the internal schema."""
    tables = con.execute("select table_name from duckdb_tables() where schema_name = ?", [internal]).fetchall()
    views = con.execute("select view_name from duckdb_views() where schema_name = ? and not internal", [internal]).fetchall()
    return {**{t[0]: "TABLE" for t in tables}, **{v[0]: "VIEW" for v in views}}


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


DDL = """
create schema if not exists {m};
create table if not exists {m}.builds (
  build_id varchar, model varchar, kind varchar, fingerprint varchar, commit varchar, env varchar,
  run_id varchar, table_name varchar, row_count bigint, columns json, created_at timestamp);
create table if not exists {m}.audits (
  build_id varchar, check_name varchar, check_hash varchar, passed boolean, severity varchar,
  failed_rows bigint, sample json, run_id varchar, audited_at timestamp, table_rows bigint);
create table if not exists {m}.publishes (
  publish_id varchar, env varchar, schema_name varchar, commit varchar, previous_commit varchar,
  builds json, models_changed json, run_id varchar, published_at timestamp);
create table if not exists {m}.env_views (
  env varchar, model varchar, build_id varchar, view_sql varchar, definition varchar);
create table if not exists {m}.environments (
  env varchar, schema_name varchar, commit varchar, publish_id varchar, published_at timestamp);
create table if not exists {m}.ref_status (
  env varchar, schema_name varchar, commit varchar, status varchar, reason varchar, updated_at timestamp);
-- forward migrations of catalogs made by earlier versions
alter table {m}.env_views add column if not exists definition varchar;
alter table {m}.builds add column if not exists invalid_reason varchar;
alter table {m}.builds add column if not exists inputs json;
alter table {m}.builds add column if not exists version varchar;
create table if not exists {m}.segments (build_id varchar, seq integer, table_name varchar);
"""


_ensured: set[tuple] = set()


def ensure_catalog(con: duckdb.DuckDBPyConnection, meta: str) -> None:
    """Create (or migrate) the catalog tables; once per database file and process."""
    key = _database_key(con, meta)
    if key is not None and key in _ensured:
        return
    con.execute(DDL.format(m=quote(meta)))
    key = key or _database_key(con, meta)
    if key is not None:
        _ensured.add(key)


def _database_key(con: duckdb.DuckDBPyConnection, meta: str) -> tuple | None:
    path = con.execute("select path from duckdb_databases() where database_name = current_database()").fetchall()
    if not path or not path[0][0]:
        return None
    try:
        st = os.stat(path[0][0])
    except OSError:
        return None
    # the inode tells a replaced file from the one we migrated; the schema must still be there
    if not con.execute("select 1 from duckdb_tables() where schema_name = ? and table_name = 'segments'", [meta]).fetchall():
        return None
    return (path[0][0], st.st_ino, st.st_dev, meta)


def build_from_row(row: tuple) -> BuildRecord:
    build_id, model, fp, table, commit, run_id, rows, created, inputs, version = row
    return BuildRecord(build_id, model, fp, table, commit, run_id, rows, created,
                       json.loads(inputs) if inputs is not None else None, version)


BUILD_COLUMNS = ("b.build_id, b.model, b.fingerprint, b.table_name, b.commit, b.run_id, b.row_count, b.created_at, "
                 "b.inputs, b.version")


def record_build(
    con: duckdb.DuckDBPyConnection, meta: str, rec: BuildRecord, kind: str, env: str, columns: dict[str, str]
) -> None:
    con.execute(
        f"""insert into {quote(meta)}.builds (build_id, model, kind, fingerprint, commit, env, run_id, table_name,
            row_count, columns, created_at, inputs, version) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [rec.build_id, rec.model, kind, rec.fingerprint, rec.commit, env, rec.run_id, rec.table,
         rec.row_count, json.dumps(columns), rec.created_at or now(),
         json.dumps(rec.inputs) if rec.inputs is not None else None, rec.version],
    )


def present_builds(con: duckdb.DuckDBPyConnection, meta: str, internal: str, models: list[str]) -> list[BuildRecord]:
    """Builds of `models` whose physical table still exists, newest first."""
    rows = con.execute(
        f"""select {BUILD_COLUMNS} from {quote(meta)}.builds b
            join {OBJECTS} t on t.schema_name = ? and t.table_name = b.table_name
            where list_contains(?, b.model) and b.invalid_reason is null order by b.created_at desc""",
        [internal, models],
    ).fetchall()
    return [build_from_row(r) for r in rows]


def published_builds(con: duckdb.DuckDBPyConnection, meta: str, env: str | None = None) -> dict[str, dict[str, BuildRecord]]:
    """env -> model -> build it currently serves."""
    sql = f"""select v.env, {BUILD_COLUMNS} from {quote(meta)}.env_views v
              join {quote(meta)}.builds b on b.build_id = v.build_id"""
    rows = con.execute(sql + (" where v.env = ?" if env else ""), [env] if env else []).fetchall()
    out: dict[str, dict[str, BuildRecord]] = {}
    for row in rows:
        out.setdefault(row[0], {})[row[2]] = build_from_row(row[1:])
    return out


def latest_audits(con: duckdb.DuckDBPyConnection, meta: str, build_ids: list[str]) -> dict[str, dict[str, AuditRecord]]:
    rows = con.execute(
        f"""select build_id, check_name, check_hash, passed, failed_rows from {quote(meta)}.audits
            where list_contains(?, build_id)
            qualify row_number() over (partition by build_id, check_name order by audited_at desc) = 1""",
        [build_ids],
    ).fetchall()
    out: dict[str, dict[str, AuditRecord]] = {}
    for build_id, check, chash, passed, failed in rows:
        out.setdefault(build_id, {})[check] = AuditRecord(build_id, check, chash, bool(passed), failed)
    return out


def environment_row(con: duckdb.DuckDBPyConnection, meta: str, env: str) -> tuple | None:
    rows = con.execute(
        f"select env, schema_name, commit, publish_id, published_at from {quote(meta)}.environments where env = ?",
        [env],
    ).fetchall()
    return rows[0] if rows else None


def catalog_state(
    con: duckdb.DuckDBPyConnection, meta: str, internal: str, env: str, fingerprints: dict[str, str],
    prefer_run: str | None = None,
) -> CatalogState:
    """What the planner needs: reusable builds per (model, fingerprint), their audits, and what
    `env` serves now. A build published somewhere is preferred over a newer unpublished one, so a
    branch points at the very tables production serves (zero copy); builds of `prefer_run` (a
    scheduled refresh) beat both."""
    ensure_catalog(con, meta)
    published_all = published_builds(con, meta)
    published = published_all.get(env, {})
    rank: dict[str, int] = {}
    for e, builds in published_all.items():
        for b in builds.values():
            rank[b.build_id] = min(rank.get(b.build_id, 9), 0 if e == env else 1)
    found: dict[tuple[str, str], list[BuildRecord]] = {}
    wanted = set(fingerprints.items())
    for b in present_builds(con, meta, internal, sorted(fingerprints)):  # newest first
        if prefer_run is not None and b.run_id == prefer_run:
            rank[b.build_id] = -1
        if (b.model, b.fingerprint) in wanted:
            found.setdefault((b.model, b.fingerprint), []).append(b)
    candidates = {k: tuple(sorted(v, key=lambda b: rank.get(b.build_id, 2))) for k, v in found.items()}  # stable
    ids = [b.build_id for builds in candidates.values() for b in builds]
    env_row = environment_row(con, meta, env)
    return CatalogState(candidates, latest_audits(con, meta, ids), published, env_row[2] if env_row else None)


def record_audits(con: duckdb.DuckDBPyConnection, meta: str, build_id: str, run_id: str | None,
                  results: list[Any], table_rows: int | None) -> None:
    """Store check results (objects with name, hash, passed, severity, failed_rows, sample)."""
    ts = now()
    con.executemany(
        f"insert into {quote(meta)}.audits values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[build_id, r.name, r.hash, r.passed, r.severity, r.failed_rows, json.dumps(r.sample, default=str),
          run_id, ts, table_rows] for r in results],
    )


@dataclass(frozen=True)
class RefStatus:
    env: str
    schema: str
    commit: str
    status: str  # building | published | blocked | invalid | failed | superseded
    reason: str
    updated_at: datetime


def set_ref_status(con: duckdb.DuckDBPyConnection, meta: str, env: str, schema: str, commit: str,
                   status: str, reason: str = "") -> None:
    ensure_catalog(con, meta)
    with transaction(con):
        con.execute(f"delete from {quote(meta)}.ref_status where env = ?", [env])
        con.execute(f"insert into {quote(meta)}.ref_status values (?, ?, ?, ?, ?, ?)", [env, schema, commit, status, reason, now()])


def ref_statuses(con: duckdb.DuckDBPyConnection, meta: str) -> dict[str, RefStatus]:
    ensure_catalog(con, meta)
    rows = con.execute(f"select env, schema_name, commit, status, reason, updated_at from {quote(meta)}.ref_status").fetchall()
    return {r[0]: RefStatus(*r) for r in rows}


def find_build(con: duckdb.DuckDBPyConnection, meta: str, internal: str, model: str, fingerprint: str,
               env: str, run_id: str | None) -> BuildRecord | None:
    """The build a step should read for (model, fingerprint): the one made by this run, else the one
    `env` publishes, else one published anywhere, else the newest."""
    ensure_catalog(con, meta)
    m = quote(meta)
    rows = con.execute(
        f"""select {BUILD_COLUMNS} from {m}.builds b
            join {OBJECTS} t on t.schema_name = ? and t.table_name = b.table_name
            left join (select build_id, min(case when env = ? then 0 else 1 end) as r
                       from {m}.env_views group by build_id) p on p.build_id = b.build_id
            where b.model = ? and b.fingerprint = ? and b.invalid_reason is null
            order by (b.run_id is not distinct from ?) desc, coalesce(p.r, 2), b.created_at desc
            limit 1""",
        [internal, env, model, fingerprint, run_id],
    ).fetchall()
    return build_from_row(rows[0]) if rows else None
