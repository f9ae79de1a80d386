"""Segmented builds: incremental models and snapshots without copies and without rewriting history.

A segmented build is an ordered list of immutable segment tables plus one view over them in the
internal schema (the build's "table"). A run makes a *new* build: the previous build's segments
plus one new segment with what changed; the previous build is untouched, so it stays valid for
rollback and consumers keep reading it until the new build is audited and published. When the
list grows past `compact_after`, the new build gets one compacted table instead (old builds keep
their segments). Snapshot rows carry `_valid_from` and `_deleted`; `valid_to` and `is_current`
are derived at read time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal

from gitops_data.engines.base import Engine
from gitops_data.errors import BuildError
from gitops_data.naming import qualified, quote
from gitops_data.plan import BuildRecord
from gitops_data.project.schema import IncrementalSpec, SnapshotSpec, parse_duration
from gitops_data.warehouse.builder import BuildTarget, with_casts
from gitops_data.warehouse.catalog import Catalog, now

SEQ = "_gitops_seq"
_DERIVED = ("valid_from", "valid_to", "is_current")  # columns a snapshot's view adds


@dataclass(frozen=True)
class Layout:
    """How a segmented build's view reads its segments."""

    kind: str  # append | upsert | scd2
    keys: tuple[str, ...] = ()
    compact_after: int = 10

    @classmethod
    def of(cls, incremental: IncrementalSpec | None, snapshot: SnapshotSpec | None) -> Layout:
        if snapshot is not None:
            return cls("scd2", tuple(snapshot.unique_key), snapshot.compact_after)
        assert incremental is not None
        kind = "upsert" if incremental.unique_key else "append"
        return cls(kind, tuple(incremental.unique_key), incremental.compact_after)


def _keys(keys: tuple[str, ...]) -> str:
    return ", ".join(quote(k) for k in keys)


def _list(names: list[str], prefix: str = "") -> str:
    return ", ".join(prefix + quote(n) for n in names)


def _union(engine: Engine, internal: str, segments: list[str], with_seq: bool) -> tuple[str, list[str]]:
    """All segments' rows matched by column name (a column a segment lacks reads as NULL of the
    type it has elsewhere); the query and its columns (without SEQ)."""
    layouts = [engine.columns(internal, t) for t in segments]
    columns: dict[str, str] = {}
    for cols in layouts:
        for c, t in cols.items():
            columns.setdefault(c, t)
    parts = []
    for i, (table, cols) in enumerate(zip(segments, layouts, strict=True), 1):
        items = [quote(c) if c in cols else f"cast(null as {t}) as {quote(c)}" for c, t in columns.items()]
        if with_seq:
            items.append(f"{i} as {SEQ}")
        parts.append(f"select {', '.join(items)} from {qualified(internal, table)}")
    return " union all ".join(parts), list(columns)


def raw_rows(engine: Engine, internal: str, segments: list[str], layout: Layout) -> str:
    """All stored rows of a build, latest row per key for upserts (what compaction keeps)."""
    if layout.kind == "upsert":
        union, cols = _union(engine, internal, segments, True)
        return (
            f"select {_list(cols)} from (select *, row_number() over (partition by {_keys(layout.keys)} "
            f"order by {SEQ} desc) as _gitops_rn from ({union}) as u) as r where _gitops_rn = 1"
        )
    union, cols = _union(engine, internal, segments, layout.kind == "scd2")
    return f"select {_list(cols)} from ({union}) as u" if layout.kind == "scd2" else union


def view_sql(engine: Engine, internal: str, segments: list[str], layout: Layout) -> str:
    """What consumers see through a segmented build."""
    if layout.kind != "scd2":
        return raw_rows(engine, internal, segments, layout)
    union, cols = _union(engine, internal, segments, True)
    data = [c for c in cols if c not in ("_valid_from", "_deleted")]
    return (
        f"select {_list(data)}{', ' if data else ''}_valid_from as valid_from, "
        "_next as valid_to, _next is null as is_current from ("
        f"select *, lead(_valid_from) over (partition by {_keys(layout.keys)} "
        f"order by _valid_from, {SEQ}) as _next "
        f"from ({union}) as u) as v where not _deleted"
    )


def literal(value: object) -> str:
    """An SQL literal for a watermark value read back from DuckDB."""
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"timestamp '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"date '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def incremental_select(
    engine: Engine, model_select: str, spec: IncrementalSpec, base_view: str | None
) -> str:
    """The model's query restricted to rows past the base build's maximum of `spec.column`
    (minus the lookback). DuckDB pushes the filter through the query down to the scans."""
    if base_view is None:
        return model_select
    watermark = engine.scalar(f"select max({quote(spec.column)}) from {base_view}")
    if watermark is None:
        return model_select
    bound = literal(watermark)
    if spec.lookback is not None:
        if isinstance(spec.lookback, str):
            bound = f"({bound} - interval '{int(parse_duration(spec.lookback))} seconds')"
        else:
            bound = f"({bound} - {spec.lookback})"
    return f"select * from ({model_select}) as q where {quote(spec.column)} > {bound}"


def snapshot_select(engine: Engine, source: str, spec: SnapshotSpec, base_view: str | None) -> str:
    """New row versions (and deletion markers) of `source` since the base build's current state."""
    # the validator: strategy timestamp comes with updated_at, strategy check without it
    updated_at = spec.updated_at if spec.strategy == "timestamp" else None
    now = engine.capabilities.local_now
    valid_from = f"cast(s.{quote(updated_at)} as timestamp)" if updated_at else now
    first = f"select s.*, {valid_from} as _valid_from, false as _deleted from {source} s"
    if base_view is None:
        return first
    cols = engine.query_columns(f"select * from {source}")
    history = [c for c in engine.query_columns(f"select * from {base_view}") if c not in _DERIVED]
    missing = [k for k in spec.unique_key if k not in cols]
    if missing:
        raise BuildError(f"snapshot: unique_key column(s) {missing} are not in {source}")
    join = " and ".join(f"s.{quote(k)} = c.{quote(k)}" for k in spec.unique_key)
    if updated_at:
        changed = f"s.{quote(updated_at)} > c.{quote(updated_at)}"
    else:
        watch = spec.check_cols or [c for c in cols if c not in spec.unique_key]
        changed = " or ".join(f"s.{quote(c)} is distinct from c.{quote(c)}" for c in watch) or "false"
    current = f"(select {_list(history)} from {base_view} where is_current)"
    first_key = quote(spec.unique_key[0])
    sql = (
        f"select s.*, {valid_from} as _valid_from, false as _deleted from {source} s "
        f"left join {current} c on {join} where c.{first_key} is null or {changed}"
    )
    if spec.invalidate_hard_deletes:
        kept = ", ".join(f"c.{quote(c)}" if c in history else f"null as {quote(c)}" for c in cols)
        sql += (
            f" union all select {kept}, {now} as _valid_from, true as _deleted "
            f"from {current} c where not exists (select 1 from {source} s where {join})"
        )
    return sql


def write_segmented(
    catalog: Catalog,
    target: BuildTarget,
    delta_select: str,
    base: BuildRecord | None,
    layout: Layout,
    cast_types: dict[str, str],
) -> tuple[BuildRecord, dict[str, str]]:
    """A new build = base's segments + one segment of `delta_select` (none if empty), compacted
    when too many; all in one transaction with its catalog rows."""
    engine, internal = catalog.engine, target.internal_schema
    view = target.build.table
    try:
        with catalog.transaction():
            segments = catalog.segments_of(base.build_id) if base else []
            seg = f"{view}_s"
            added = engine.create_table_as(internal, seg, with_casts(engine, delta_select, cast_types))
            if added or not segments:
                segments = [*segments, seg]
            else:
                engine.drop("table", internal, seg)
            if len(segments) > layout.compact_after:
                compacted = f"{view}_c"
                engine.create_table_as(internal, compacted, raw_rows(engine, internal, segments, layout))
                segments = [compacted]
            engine.create_view(internal, view, view_sql(engine, internal, segments, layout), replace=False)
            catalog.add_segments(target.build.build_id, segments)
            rows = engine.count(qualified(internal, view))
            columns = engine.columns(internal, view)
            # accumulated history: its data is its own (the planner set version = build id)
            rec = replace(target.build, run_id=target.run_id, row_count=rows, created_at=now())
            catalog.record_build(rec, target.kind, target.env, columns)
    except BuildError:
        raise
    except Exception as exc:
        raise target.failed(exc) from None
    return rec, columns
