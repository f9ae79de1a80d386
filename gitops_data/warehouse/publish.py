"""Publish: point an environment's external schema at the builds of one commit.

The engine's publish strategy (`capabilities.publish`) says how:
- one transaction (DuckDB, PostgreSQL): every view change, the drops of views the commit removed,
  and the catalog record of the publish commit together: readers see the old commit or the new
  one, never a mix, and a crash before COMMIT leaves the old state served.
- per view (engines without transactional DDL): every view body is checked first (the builds are
  built and audited before a publish starts), then each view is replaced by one atomic statement,
  the removed views dropped after, and the catalog record written last. Readers may see a mix of
  the two commits for the window the flips take (one statement per changed view); a reader that
  needs one commit throughout reads a checkout's schema (`gitops-data checkout`). A crash part way
  leaves the catalog saying the old commit; publishing again finishes the flip.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from gitops_data.capabilities import PublishStrategy
from gitops_data.errors import GitopsError, PublishConflict
from gitops_data.naming import qualified
from gitops_data.warehouse.catalog import Catalog, now


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


@dataclass(frozen=True)
class PublishTarget:
    """What to publish: an environment, a commit, and model -> (build id, physical table)."""

    env: str
    schema: str
    commit: str
    builds: dict[str, tuple[str, str]]
    rollback_of: str | None = None  # the publish id this one restores
    hold_head: str | None = None  # a rollback holds until the branch moves past this head


# Readers holding views make a publish step back (each wait bounded by the engine's lock timeout)
# and try again, for about a minute, before it gives up with PublishConflict; the old state stays.
PUBLISH_ATTEMPTS = 60


def publish_builds(
    catalog: Catalog,
    target: PublishTarget,
    internal: str,
    run_id: str | None = None,
    consumers: tuple[str, ...] = (),
) -> PublishRecord:
    """The one publish transaction: views, drops, grants, env_views, publish record, environment row.
    Retried when readers hold a view past the engine's lock timeout."""
    engine = catalog.engine
    missing = engine.missing_roles(list(consumers)) if engine.capabilities.grants else []
    if missing:
        raise PublishConflict(
            f"consumer role(s) {', '.join(missing)} (gitops_data.yaml `consumers`) do not exist in the "
            "warehouse; create them (CREATE ROLE ...) or remove them from the settings"
        )
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            return _publish_once(catalog, target, internal, run_id, consumers, attempt)
        except Exception as exc:
            if not engine.is_lock_conflict(exc):
                raise
            if attempt == PUBLISH_ATTEMPTS:
                raise PublishConflict(
                    f"publishing {target.env} waited for readers {attempt} times and gave up; the "
                    f"previous commit is still served ({' '.join(str(exc).split())[:200]})"
                ) from None
            time.sleep(min(0.02 * 2**attempt, 1.0) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _publish_once(
    catalog: Catalog,
    target: PublishTarget,
    internal: str,
    run_id: str | None,
    consumers: tuple[str, ...],
    attempt: int = 1,
) -> PublishRecord:
    engine = catalog.engine
    env, schema = target.env, target.schema
    builds = {n: b for n, (b, _) in target.builds.items()}
    tables = {n: t for n, (_, t) in target.builds.items()}
    served = catalog.environments().get(env)
    previous = served.commit if served else None
    before = {name: b.build_id for name, b in catalog.published_builds(env).get(env, {}).items()}
    changed = tuple(sorted(n for n in builds if before.get(n) != builds[n]))
    ts = now()
    publish_id = uuid.uuid4().hex[:12]
    per_view = engine.capabilities.publish == PublishStrategy.PER_VIEW
    with catalog.transaction():
        engine.create_schema(schema)
        existing = engine.objects(schema)
        current = engine.view_definitions(schema)
        recorded = catalog.env_views(env)  # model -> (view sql, definition stored, build id)
        selects = {n: view_sql(internal, t) for n, t in tables.items()}
        stale = tuple(sorted(n for n in existing if n not in tables))
        # a view that serves the same build and is as it was published stays untouched (no lock)
        touch = {
            n: (selects[n], internal, tables[n])
            for n in tables
            if not (
                existing.get(n) == "VIEW"
                and n in recorded
                and recorded[n][2] == builds[n]
                and recorded[n][1] is not None
                and current.get(n) == recorded[n][1]
            )
        }
        if per_view:
            _flip_per_view(catalog, schema, touch, stale, existing)
        else:
            engine.lock_views(schema, [n for n in (*stale, *touch) if n in existing], attempt)
            for name in stale:
                engine.drop(existing[name], schema, name)
            engine.replace_views(schema, touch, existing)
        if engine.capabilities.grants:
            engine.grant_read(schema, list(consumers))
        definitions = engine.view_definitions(schema) if touch or stale else current
        views = {n: (builds[n], selects[n], definitions.get(n)) for n in tables}
        held = (
            f"rolled back to publish {target.rollback_of} (commit {target.commit[:10]}); "
            "the next commit on the branch publishes"
        )
        catalog.record_publish(
            publish_id,
            env,
            schema,
            target.commit,
            previous,
            views,
            {"changed": list(changed), "removed": list(stale), "rollback_of": target.rollback_of},
            run_id,
            ts,
            target.hold_head,
            held,
        )
    return PublishRecord(publish_id, env, schema, target.commit, previous, changed, stale, ts)


def _flip_per_view(
    catalog: Catalog,
    schema: str,
    touch: dict[str, tuple[str, str, str]],
    stale: tuple[str, ...],
    existing: dict[str, str],
) -> None:
    """The per-view strategy: check every new view body before the first change (a body that
    cannot run stops the publish with nothing changed), then replace the views one by one, each
    by one atomic statement of the engine, then drop the removed ones."""
    engine = catalog.engine
    for name, (select, _, _) in touch.items():
        try:
            engine.query_columns(select)
        except Exception as exc:
            raise PublishConflict(
                f"view {schema}.{name} would not run ({' '.join(str(exc).split())[:200]}); nothing was "
                "changed, the previous commit is still served"
            ) from None
    for name, (select, _, _) in touch.items():
        engine.replace_view(schema, name, select, existing.get(name))
    for name in stale:
        engine.drop(existing[name], schema, name)


def republish(
    catalog: Catalog,
    env: str,
    publish_id: str,
    internal: str,
    hold_head: str | None = None,
    into: tuple[str, str] | None = None,
    consumers: tuple[str, ...] = (),
) -> PublishRecord:
    """Serve exactly what an earlier publish of `env` served (zero copy; incremental models and
    snapshots included, whose builds a commit alone does not pin). With `hold_head`, that head is not
    published again until the branch moves. `into` = (env, schema) serves it in another environment
    (a checkout) instead."""
    row = catalog.publish_row(env, publish_id)
    if row is None:
        raise GitopsError(f"environment {env!r} has no publish {publish_id!r} (see `gitops-data history`)")
    schema, commit, ids = row
    rollback_of: str | None = publish_id
    if into is not None:
        (env, schema), rollback_of = into, None
    present = catalog.engine.objects(internal)
    tables = {b: t for b, t in catalog.tables_of(list(ids.values())).items() if t in present}
    missing = sorted(model for model, b in ids.items() if b not in tables)
    if missing:
        raise GitopsError(
            f"publish {publish_id} can no longer be restored: builds of {', '.join(missing)} were collected"
        )
    return publish_builds(
        catalog,
        PublishTarget(
            env, schema, commit, {n: (b, tables[b]) for n, b in ids.items()}, rollback_of, hold_head
        ),
        internal,
        consumers=consumers,
    )


def unpublish(catalog: Catalog, env: str, schema: str) -> list[str]:
    """Drop an environment (its branch was deleted): its views and schema go, builds stay for gc."""
    engine = catalog.engine
    with catalog.transaction():
        dropped = list(engine.objects(schema))
        engine.drop_schema(schema)
        catalog.forget_environment(env)
    return dropped
