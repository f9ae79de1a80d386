"""Read-only views of the catalog for people (environment diffs), and garbage collection."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from gitops_data.engines.base import SCRATCH_PREFIX
from gitops_data.errors import GitopsError
from gitops_data.naming import failures_prefix, is_build_table
from gitops_data.plan import BuildRecord
from gitops_data.plan.retention import PublishEntry, retained_builds
from gitops_data.project.schema import Settings
from gitops_data.warehouse.catalog import Catalog, now


@dataclass(frozen=True)
class ModelDiff:
    model: str
    state: str  # changed | only_in_a | only_in_b
    rows_a: int | None
    rows_b: int | None
    columns_added: tuple[str, ...] = ()
    columns_removed: tuple[str, ...] = ()
    columns_retyped: tuple[str, ...] = ()


def diff_envs(catalog: Catalog, env_a: str, env_b: str) -> list[ModelDiff]:
    """Models whose served build differs between two environments, with row count and schema changes."""
    known = catalog.environments()
    for env in (env_a, env_b):
        if env not in known:
            raise GitopsError(
                f"no environment {env!r}; environments: {', '.join(sorted(known)) or 'none yet'}"
            )
    a = {s.model: s for s in catalog.served(env_a)}
    b = {s.model: s for s in catalog.served(env_b)}
    out = []
    for model in sorted(set(a) | set(b)):
        if model not in b:
            out.append(ModelDiff(model, "only_in_a", a[model].row_count, None))
        elif model not in a:
            out.append(ModelDiff(model, "only_in_b", None, b[model].row_count))
        elif a[model].build_id != b[model].build_id:
            ca, cb = a[model].columns, b[model].columns
            out.append(
                ModelDiff(
                    model,
                    "changed",
                    a[model].row_count,
                    b[model].row_count,
                    tuple(c for c in cb if c not in ca),
                    tuple(c for c in ca if c not in cb),
                    tuple(f"{c}: {ca[c]} -> {cb[c]}" for c in ca if c in cb and ca[c] != cb[c]),
                )
            )
    return out


@dataclass(frozen=True)
class GcReport:
    dropped: list[BuildRecord]
    kept: int
    orphans: list[str]  # tables in the internal schema that no catalog row describes (left alone)
    # build tables whose catalog row never came (a crash between the two, on an engine without
    # transactions): dropped
    dropped_orphans: list[str] = dataclasses.field(default_factory=list)


def collect_garbage(
    catalog: Catalog,
    s: Settings,
    dry_run: bool = False,
    grace: timedelta = timedelta(minutes=10),
    protected_commits: frozenset[str] = frozenset(),
) -> GcReport:
    """Drop builds no environment serves and no retained publish needs (see plan/retention.py)."""
    engine = catalog.engine
    builds = catalog.builds()
    serving = {sb.build_id for sb in catalog.served()}
    live = set(catalog.environments())  # a deleted branch's or dropped checkout's history is not kept
    publishes = [PublishEntry(env, ts, ids) for env, ts, ids in catalog.publishes() if env in live]
    keep = retained_builds(builds, publishes, serving, s.retention, now(), grace, protected_commits)
    keep |= catalog.open_plan_builds()  # a plan waiting for its run reads and makes exactly these
    reads = catalog.physical_reads()  # a kept view build keeps the builds it selects from
    stack = list(keep)
    while stack:
        for read in reads.get(stack.pop(), ()):
            if read not in keep:
                keep.add(read)
                stack.append(read)
    drop = [b for b in builds if b.build_id not in keep]
    present = engine.objects(s.internal_schema)
    segments = catalog.all_segments()
    # an alias shares its table with another build: the table goes with the last of them
    still_used = {b.table for b in builds if b.build_id in keep}
    still_used |= {t for b in builds if b.build_id in keep for t in segments.get(b.build_id, [])}
    doomed = {b.table for b in drop if b.table not in still_used} | {
        t for b in drop for t in segments.get(b.build_id, []) if t not in still_used
    }
    # a build's failures tables (dbt's store_failures) go with its table
    doomed_prefixes = tuple(failures_prefix(t) for t in doomed)
    doomed |= {n for n in present if doomed_prefixes and n.startswith(doomed_prefixes)}
    recorded = {b.build_id for b in builds}
    # a build writes its tables, then its segment rows, then its own row: segment rows of a build
    # with no row are what a crash in between left (on an engine without transactions)
    dangling = sorted(b for b in segments if b not in recorded)
    known = {b.table for b in builds} | {t for b, ts in segments.items() if b in recorded for t in ts}
    prefixes = tuple(failures_prefix(t) for t in known)
    known |= {n for n in present if prefixes and n.startswith(prefixes)}
    # bulk loads stage data in scratch tables; one left by a killed process is no one's (gc holds the
    # warehouse lock, so no load is under way)
    scratch = sorted(n for n in set(present) - known if n.startswith(SCRATCH_PREFIX))
    unknown = set(present) - known - set(scratch)
    # likewise a build's table without its catalog row: never served, nothing reads it
    built = {n for n in unknown if is_build_table(n)}
    orphans = sorted(unknown - built)
    if not dry_run and (scratch or built or dangling):
        with catalog.transaction():
            for name in scratch:
                engine.drop(present[name], s.internal_schema, name)
            for name in sorted(built, key=lambda n: present[n] != "VIEW"):  # a segmented build's view first
                engine.drop(present[name], s.internal_schema, name)
            catalog.delete_builds(dangling)
    if not dry_run and drop:
        with catalog.transaction():
            # views first (a segmented build's view reads its segments), newest first (a view build
            # reads builds made before it, never after)
            made = {b.table: b.created_at or datetime.min for b in builds}
            order = sorted(doomed, key=lambda n: made.get(n, datetime.min), reverse=True)
            # failures tables (store_failures) before their build (it may be a view of theirs)
            first = doomed_prefixes or ("\0",)
            for name in sorted(order, key=lambda n: (not n.startswith(first), present.get(n) != "VIEW")):
                if name in present:
                    engine.drop(present[name], s.internal_schema, name)
            catalog.delete_builds([b.build_id for b in drop])
    return GcReport(drop, len(builds) - len(drop), orphans, sorted(built))
