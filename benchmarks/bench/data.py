"""Deterministic data: every value is a hash of the row number (DuckDB `hash()` over `range()`), so
the same size gives the same bytes on every run and thread count."""

from __future__ import annotations

from pathlib import Path

KINDS = ["view", "view", "view", "click", "cart", "purchase"]
COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL"]
USERS_PER_ROW = 25  # about 25 events per user


def _pick(values: list[str], salt: int, col: str = "i") -> str:
    items = ", ".join(f"'{v}'" for v in values)
    return f"[{items}][1 + (hash({col}, {salt}) % {len(values)})::bigint]"


def events_select(rows: int) -> str:
    """A year of web-shop events: sessions of 8 events, ~25 events per user, 1 in 6 a purchase."""
    users = max(rows // USERS_PER_ROW, 10)
    step = max(365 * 86400 // max(rows, 1), 1)
    return f"""
        select i as event_id,
               (hash(i // 8, 1) % {users})::bigint as user_id,
               (i // 8)::bigint as session_id,
               timestamp '2024-01-01' + to_seconds((i * {step})::bigint) as ts,
               {_pick(KINDS, 2)} as kind,
               round((hash(i, 3) % 100000)::bigint / 100.0, 2) as amount,
               {_pick(COUNTRIES, 4, "i // 8")} as country
        from range({rows}) t(i)"""


def write_events_parquet(path: Path, rows: int) -> Path:
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"copy ({events_select(rows)}) to '{path}' (format parquet, compression zstd)")
    finally:
        con.close()
    return path


def facts_select(rows: int) -> str:
    """The audited table of case 4: every declared check passes on it."""
    return f"""
        select i as id,
               round((hash(i, 1) % 100000)::bigint / 100.0, 2) as amount,
               {_pick(["view", "click", "cart", "purchase", "refund"], 2)} as kind,
               'c' || (hash(i, 3) % 100000)::varchar as code,
               (hash(i, 4) % 10001)::bigint / 100.0 as score
        from range({rows}) t(i)"""


def wide_select(rows: int) -> str:
    """A plain 3-column table (case 5's published builds)."""
    return f"select i as id, hash(i) % 1000 as k, 'x' || (i % 100)::varchar as s from range({rows}) t(i)"


def ledger_select(rows: int, start: int = 0) -> str:
    """The incremental source of case 9: `id` is the row number, so appending rows means more ids.
    Rows `start` .. `rows - 1` (a later range continues the same ledger)."""
    return f"""
        select i as id,
               (hash(i, 1) % 1000000)::bigint as user_id,
               round((hash(i, 2) % 100000)::bigint / 100.0, 2) as amount,
               {_pick(["view", "click", "cart", "purchase", "refund"], 3)} as kind
        from range({start}, {rows}) t(i)"""


def write_ledger_parquet(path: Path, rows: int) -> Path:
    """`rows` ledger rows as one parquet file; a larger `rows` gives the same first rows plus new ones."""
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.parquet")
    con = duckdb.connect()
    try:
        con.execute(f"copy ({ledger_select(rows)}) to '{tmp}' (format parquet, compression zstd)")
    finally:
        con.close()
    tmp.replace(path)
    return path
