"""Read-only views of the catalog for people: history of publishes, environment diffs, gc."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import duckdb

from gitops_data.errors import GitopsError
from gitops_data.naming import qualified, quote
from gitops_data.plan import BuildRecord
from gitops_data.retention import PublishEntry, retained_builds
from gitops_data.spec.schema import Settings
from gitops_data.warehouse.catalog import BUILD_COLUMNS, build_from_row, ensure_catalog, internal_objects, now
from gitops_data.warehouse.connection import transaction


def history(con: duckdb.DuckDBPyConnection, meta: str, env: str, limit: int = 50) -> list[dict]:
    ensure_catalog(con, meta)
    rows = con.execute(
        f"""select published_at, commit, previous_commit, models_changed, run_id, publish_id
            from {quote(meta)}.publishes where env = ? order by published_at desc limit ?""",
        [env, limit],
    ).fetchall()
    return [
        {"published_at": r[0], "commit": r[1], "previous_commit": r[2], **json.loads(r[3]), "run_id": r[4],
         "publish_id": r[5]}
        for r in rows
    ]


@dataclass(frozen=True)
class ModelDiff:
    model: str
    state: str  # changed | only_in_a | only_in_b
    rows_a: int | None
    rows_b: int | None
    columns_added: tuple[str, ...] = ()
    columns_removed: tuple[str, ...] = ()
    columns_retyped: tuple[str, ...] = ()


def diff_envs(con: duckdb.DuckDBPyConnection, meta: str, env_a: str, env_b: str) -> list[ModelDiff]:
    """Models whose served build differs between two environments, with row count and schema changes."""
    ensure_catalog(con, meta)
    m = quote(meta)

    def served(env: str) -> dict[str, tuple]:
        rows = con.execute(
            f"""select v.model, b.build_id, b.row_count, b.columns from {m}.env_views v
                join {m}.builds b on b.build_id = v.build_id where v.env = ?""", [env]).fetchall()
        return {r[0]: (r[1], r[2], json.loads(r[3])) for r in rows}

    known = {r[0] for r in con.execute(f"select env from {m}.environments").fetchall()}
    for env in (env_a, env_b):
        if env not in known:
            raise GitopsError(f"no environment {env!r}; environments: {', '.join(sorted(known)) or 'none yet'}")
    a, b = served(env_a), served(env_b)
    out = []
    for model in sorted(set(a) | set(b)):
        if model not in b:
            out.append(ModelDiff(model, "only_in_a", a[model][1], None))
        elif model not in a:
            out.append(ModelDiff(model, "only_in_b", None, b[model][1]))
        elif a[model][0] != b[model][0]:
            ca, cb = a[model][2], b[model][2]
            out.append(ModelDiff(
                model, "changed", a[model][1], b[model][1],
                tuple(c for c in cb if c not in ca), tuple(c for c in ca if c not in cb),
                tuple(f"{c}: {ca[c]} -> {cb[c]}" for c in ca if c in cb and ca[c] != cb[c]),
            ))
    return out


@dataclass(frozen=True)
class GcReport:
    dropped: list[BuildRecord]
    kept: int
    orphans: list[str]  # tables in the internal schema that no catalog row describes


def collect_garbage(con: duckdb.DuckDBPyConnection, s: Settings, dry_run: bool = False,
                    grace: timedelta = timedelta(minutes=10), protected_commits: frozenset[str] = frozenset()) -> GcReport:
    """Drop builds no environment serves and no retained publish needs (see retention.py)."""
    ensure_catalog(con, s.meta_schema)
    m = quote(s.meta_schema)
    builds = [build_from_row(r) for r in con.execute(f"select {BUILD_COLUMNS} from {m}.builds b").fetchall()]
    serving = {r[0] for r in con.execute(f"select build_id from {m}.env_views").fetchall()}
    publishes = [
        PublishEntry(env, ts, frozenset(json.loads(bjson).values()))
        for env, ts, bjson in con.execute(f"select env, published_at, builds from {m}.publishes").fetchall()
    ]
    keep = retained_builds(builds, publishes, serving, s.retention, now(), grace, protected_commits)
    drop = [b for b in builds if b.build_id not in keep]
    present = internal_objects(con, s.internal_schema)
    segments: dict[str, list[str]] = {}
    for build_id, table in con.execute(f"select build_id, table_name from {m}.segments").fetchall():
        segments.setdefault(build_id, []).append(table)
    still_used = {t for b in builds if b.build_id in keep for t in segments.get(b.build_id, [])}
    doomed = {b.table for b in drop} | {t for b in drop for t in segments.get(b.build_id, []) if t not in still_used}
    known = {b.table for b in builds} | {t for ts in segments.values() for t in ts}
    orphans = sorted(set(present) - known)
    if not dry_run and drop:
        with transaction(con):
            # views (segmented builds) first: they read the segment tables
            for name in sorted(doomed, key=lambda n: present.get(n) != "VIEW"):
                if name in present:
                    con.execute(f"drop {present[name]} {qualified(s.internal_schema, name)}")
            ids = [b.build_id for b in drop]
            for table in ("audits", "segments", "builds"):
                con.execute(f"delete from {m}.{table} where list_contains(?, build_id)", [ids])
    return GcReport(drop, len(builds) - len(drop), orphans)
