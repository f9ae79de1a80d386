"""The guardrail: find (and repair) changes made to the warehouse outside Git.

External schemas belong to gitops-data. Drift is: an object there that the catalog did not publish,
a published view whose definition changed or that was dropped, a missing schema, or a served
physical table whose row count or columns differ from what was recorded when it was built/audited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb

from gitops_data.naming import qualified, quote
from gitops_data.warehouse.catalog import ensure_catalog, internal_objects
from gitops_data.warehouse.connection import transaction
from gitops_data.warehouse.publish import external_objects, view_definitions


@dataclass(frozen=True)
class Drift:
    env: str
    schema: str
    kind: str  # unexpected_object | view_changed | view_dropped | table_changed
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.env} ({self.schema}): {self.kind} {self.name}: {self.detail}"


def detect_drift(con: duckdb.DuckDBPyConnection, meta: str, internal: str) -> list[Drift]:
    """Every difference between what the catalog published and what the warehouse holds."""
    ensure_catalog(con, meta)
    m = quote(meta)
    out: list[Drift] = []
    envs = con.execute(f"select env, schema_name from {m}.environments order by env").fetchall()
    for env, schema in envs:
        expected = {r[0]: (r[1], r[2]) for r in con.execute(
            f"select model, definition, build_id from {m}.env_views where env = ?", [env]).fetchall()}
        objects = external_objects(con, schema)
        actual = view_definitions(con, schema)
        for name, kind in sorted(objects.items()):
            if name not in expected:
                out.append(Drift(env, schema, "unexpected_object", name, f"{kind.lower()} not published by gitops-data"))
            elif kind != "VIEW":
                out.append(Drift(env, schema, "view_changed", name, "replaced by a table"))
            elif actual.get(name) != expected[name][0]:
                out.append(Drift(env, schema, "view_changed", name, f"was redefined as: {actual.get(name)}"))
        for name in sorted(set(expected) - set(objects)):
            out.append(Drift(env, schema, "view_dropped", name, "published view is missing"))
    for model, table, envs_, reason in con.execute(
        f"""select b.model, b.table_name, string_agg(distinct v.env, ', ' order by v.env), any_value(b.invalid_reason)
            from {m}.env_views v join {m}.builds b on b.build_id = v.build_id
            where b.invalid_reason is not null group by all order by 1"""
    ).fetchall():
        out.append(Drift(envs_, internal, "invalid_build_served", f"{internal}.{table}",
                         f"{model} awaits its rebuild (sync) after: {reason}"))
    served = con.execute(
        f"""select b.model, b.table_name, b.row_count, b.columns, string_agg(distinct v.env, ', ' order by v.env)
            from {m}.env_views v join {m}.builds b on b.build_id = v.build_id
            where b.invalid_reason is null group by all order by 1"""
    ).fetchall()
    tables = internal_objects(con, internal)
    for model, table, rows, columns, env in served:
        if table not in tables:
            out.append(Drift(env, internal, "table_changed", f"{internal}.{table}", f"physical table of {model} is gone"))
            continue
        try:
            now_rows = con.execute(f"select count(*) from {qualified(internal, table)}").fetchall()[0][0]
        except duckdb.Error as exc:  # a segment table under a build's view was dropped
            out.append(Drift(env, internal, "table_changed", f"{internal}.{table}", f"{model} cannot be read: {exc}"))
            continue
        now_cols = dict(con.execute(
            "select column_name, data_type from duckdb_columns() where schema_name = ? and table_name = ? order by column_index",
            [internal, table]).fetchall())
        if now_rows != rows or now_cols != json.loads(columns):
            out.append(Drift(env, internal, "table_changed", f"{internal}.{table}",
                             f"{model}: built with {rows} rows / {len(json.loads(columns))} columns, now {now_rows} / {len(now_cols)}"))
    return out


def repair(con: duckdb.DuckDBPyConnection, meta: str, drift: list[Drift]) -> None:
    """Restore every external schema to what the catalog published (one transaction), and mark
    builds whose table changed after its audit as invalid: no plan reuses them, so the next sync
    rebuilds those models (and keeps serving the old tables until the rebuild is audited)."""
    ensure_catalog(con, meta)
    m = quote(meta)
    with transaction(con):
        for d in drift:
            if d.kind == "table_changed":
                con.execute(f"update {m}.builds set invalid_reason = ? where table_name = ?",
                            [d.detail, d.name.split(".", 1)[1]])
        for env, schema in con.execute(f"select env, schema_name from {m}.environments").fetchall():
            con.execute(f"create schema if not exists {quote(schema)}")
            published = dict(con.execute(f"select model, view_sql from {m}.env_views where env = ?", [env]).fetchall())
            for name, kind in external_objects(con, schema).items():
                if name not in published or kind != "VIEW":
                    con.execute(f"drop {kind} {qualified(schema, name)}")
            for name, select in published.items():
                con.execute(f"create or replace view {qualified(schema, name)} as {select}")
            definitions = view_definitions(con, schema)
            for name in published:
                con.execute(f"update {m}.env_views set definition = ? where env = ? and model = ?",
                            [definitions.get(name), env, name])
