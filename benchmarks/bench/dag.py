"""The 20-model SQL DAG over one parquet source (cases 1, 3, 6, 8 and the CLI), as a data repo."""

from __future__ import annotations

import time
from pathlib import Path

from bench.data import write_events_parquet
from bench.datarepo import DataRepo, dagster_home, init_repo

SOURCE = "raw_events"
SOURCE_PATH = "data/events.parquet"
CHANGED_MODEL = "user_segments"  # the mid-DAG model that cases 3 and 8 change
SEGMENT_RULE = "coalesce(r.revenue, 0) >= 3000"
SEGMENT_RULE_CHANGED = "coalesce(r.revenue, 0) >= 2500"

MODELS: list[tuple[str, str]] = [
    (
        "stg_events",
        "select event_id, user_id, session_id, ts, cast(ts as date) as day, kind, amount, country "
        "from raw_events where amount >= 0",
    ),
    (
        "purchases",
        "select event_id, user_id, session_id, ts, day, amount, country "
        "from stg_events where kind = 'purchase'",
    ),
    (
        "page_views",
        "select event_id, user_id, session_id, ts, day, country from stg_events where kind = 'view'",
    ),
    (
        "sessions",
        "select session_id, any_value(user_id) as user_id, min(ts) as started_at, max(ts) as ended_at, "
        "count(*) as events, count(*) filter (where kind = 'purchase') as purchases "
        "from stg_events group by session_id",
    ),
    (
        "user_daily",
        "select user_id, day, count(*) as events, sum(amount) filter (where kind = 'purchase') as spend "
        "from stg_events group by user_id, day",
    ),
    (
        "users",
        "select user_id, min(day) as first_day, max(day) as last_day, count(*) as events, "
        "count(distinct session_id) as sessions, any_value(country) as country "
        "from stg_events group by user_id",
    ),
    ("daily_revenue", "select day, count(*) as orders, sum(amount) as revenue from purchases group by day"),
    (
        "country_revenue",
        "select country, count(*) as orders, sum(amount) as revenue from purchases group by country",
    ),
    (
        "user_revenue",
        "select user_id, count(*) as orders, sum(amount) as revenue, max(ts) as last_order_at "
        "from purchases group by user_id",
    ),
    (
        "session_stats",
        "select cast(started_at as date) as day, count(*) as sessions, avg(events) as avg_events, "
        "avg(epoch(ended_at) - epoch(started_at)) as avg_seconds, sum(purchases) as purchases "
        "from sessions group by 1",
    ),
    (
        CHANGED_MODEL,
        "select u.user_id, u.country, u.first_day, u.events, coalesce(r.revenue, 0) as revenue, "
        "coalesce(r.orders, 0) as orders, "
        f"case when {SEGMENT_RULE} then 'vip' when coalesce(r.revenue, 0) >= 1000 then 'regular' "
        "else 'occasional' end as segment from users u left join user_revenue r using (user_id)",
    ),
    (
        "segment_summary",
        "select segment, count(*) as users, sum(revenue) as revenue, avg(orders) as avg_orders "
        "from user_segments group by segment",
    ),
    (
        "enriched_purchases",
        "select p.event_id, p.user_id, p.day, p.amount, p.country, s.segment "
        "from purchases p join user_segments s using (user_id)",
    ),
    (
        "daily_segment_revenue",
        "select day, segment, count(*) as orders, sum(amount) as revenue "
        "from enriched_purchases group by day, segment",
    ),
    (
        "daily_views",
        "select day, count(*) as views, count(distinct user_id) as viewers from page_views group by day",
    ),
    (
        "funnel",
        "select v.day, v.views, v.viewers, coalesce(d.orders, 0) as orders, "
        "coalesce(d.orders, 0) / v.views as conversion "
        "from daily_views v left join daily_revenue d using (day)",
    ),
    (
        "top_users",
        "select user_id, country, revenue, segment from user_segments "
        "order by revenue desc, user_id limit 1000",
    ),
    (
        "cohorts",
        "select first_day as cohort_day, segment, count(*) as users, sum(revenue) as revenue "
        "from user_segments group by first_day, segment",
    ),
    (
        "user_activity_rank",
        "select user_id, day, events, "
        "rank() over (partition by user_id order by events desc, day) as activity_rank from user_daily",
    ),
    (
        "kpis",
        "select (select count(*) from users) as users, (select sum(revenue) from daily_revenue) as revenue, "
        "(select count(*) from sessions) as sessions, "
        "(select avg(conversion) from funnel) as avg_conversion, "
        "(select count(*) from top_users) as top_users",
    ),
]
assert len(MODELS) == 20

# The same DAG for the PostgreSQL cases. `any_value()` (DuckDB; PostgreSQL has it only from 16) becomes
# `min()`: every other model is the same text, which gitops-data transpiles to PostgreSQL.
PORTABLE_MODELS: list[tuple[str, str]] = [(n, sql.replace("any_value(", "min(")) for n, sql in MODELS]


def models_yaml(models: list[tuple[str, str]] = MODELS) -> str:
    """No column checks on purpose: case 1 compares build overhead; case 4 measures audits."""
    lines = ["models:"]
    for name, sql in models:
        lines += [f"  - name: {name}", f'    sql: "{sql}"']
    return "\n".join(lines) + "\n"


def project_files(models: list[tuple[str, str]] = MODELS) -> dict[str, str]:
    return {
        "gitops_data.yaml": "name: bench\n",
        "sources.yml": f"sources:\n  - name: {SOURCE}\n    path: {SOURCE_PATH}\n",
        "models.yml": models_yaml(models),
    }


def wrapped(models: list[tuple[str, str]], name: str, salt: int) -> list[tuple[str, str]]:
    """`models` with `name` changed in a way that changes its fingerprint but not its data."""
    return [(n, f"select * from ({sql}) where {salt} = {salt}" if n == name else sql) for n, sql in models]


class Scenario:
    """A folder with a data repo, a warehouse (a file in the folder, or a PostgreSQL URL) and a
    Dagster home."""

    def __init__(self, root: Path, warehouse: str | None = None):
        self.root = root
        self.repo = DataRepo(root / "repo")
        self.warehouse = warehouse or root / "warehouse.duckdb"
        self.home = root / "dagster_home"

    def kwargs(self) -> dict:
        return {"repo": str(self.repo.path), "warehouse": str(self.warehouse), "home": str(self.home)}


def make_dag_scenario(
    root: Path, rows: int, warehouse: str | None = None, models: list[tuple[str, str]] = MODELS
) -> Scenario:
    """A fresh 20-model data repo over `rows` events; nothing built yet."""
    sc = Scenario(root, warehouse)
    write_events_parquet(sc.repo.path / SOURCE_PATH, rows)
    init_repo(sc.repo.path, project_files(models))
    dagster_home(sc.home)
    return sc


def built_dag(ctx) -> tuple[Scenario, dict]:
    """The DAG scenario after its first `sync` (measured in a child): shared by cases 1, 3, 6, 8, CLI."""
    if "dag" not in ctx.cache:
        t0 = time.perf_counter()
        sc = make_dag_scenario(ctx.fresh("dag"), ctx.sizes.dag_rows)
        prepared = time.perf_counter() - t0
        measured = ctx.child("bench.steps:sync_ref", ref="main", **sc.kwargs())
        if measured["status"] != "published":
            raise RuntimeError(f"first build of the DAG did not publish: {measured}")
        measured["prepare_seconds"] = prepared
        ctx.cache["dag"] = (sc, measured)
    return ctx.cache["dag"]


def built_pg_dag(ctx) -> tuple[Scenario, dict]:
    """The same DAG (PORTABLE_MODELS) built by a first `sync` into a throwaway PostgreSQL database:
    shared by the PostgreSQL cases. Raises bench.pg.NoServer when there is no server."""
    from bench import pg

    if "pg_dag" not in ctx.cache:
        url = pg.database(ctx, "dag")
        t0 = time.perf_counter()
        sc = make_dag_scenario(ctx.fresh("pg_dag"), ctx.sizes.dag_rows, url, PORTABLE_MODELS)
        prepared = time.perf_counter() - t0
        measured = ctx.child("bench.steps:sync_ref", ref="main", name="pg_sync_main", **sc.kwargs())
        if measured["status"] != "published":
            raise RuntimeError(f"first build of the DAG on PostgreSQL did not publish: {measured}")
        measured["prepare_seconds"] = prepared
        ctx.cache["pg_dag"] = (sc, measured)
    return ctx.cache["pg_dag"]
