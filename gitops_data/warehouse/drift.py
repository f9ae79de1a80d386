"""The guardrail: find (and repair) changes made to the warehouse outside Git.

External schemas belong to gitops-data. Drift is: an object there that the catalog did not publish,
a published view whose definition changed or that was dropped, a missing schema, or a served
physical table whose row count or columns differ from what was recorded when it was built/audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops_data.naming import qualified
from gitops_data.warehouse.catalog import Catalog


@dataclass(frozen=True)
class Drift:
    env: str
    schema: str
    kind: str  # unexpected_object | view_changed | view_dropped | table_changed | invalid_build_served
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.env} ({self.schema}): {self.kind} {self.name}: {self.detail}"


def detect_drift(catalog: Catalog, internal: str) -> list[Drift]:
    """Every difference between what the catalog published and what the warehouse holds."""
    engine = catalog.engine
    out: list[Drift] = []
    for env, schema in sorted((e, s.schema) for e, s in catalog.environments().items()):
        expected = catalog.env_views(env)
        objects = engine.objects(schema)
        actual = engine.view_definitions(schema)
        for name, kind in sorted(objects.items()):
            if name not in expected:
                out.append(
                    Drift(
                        env, schema, "unexpected_object", name, f"{kind.lower()} not published by gitops-data"
                    )
                )
            elif kind != "VIEW":
                out.append(Drift(env, schema, "view_changed", name, "replaced by a table"))
            elif actual.get(name) != expected[name][1]:
                out.append(Drift(env, schema, "view_changed", name, f"was redefined as: {actual.get(name)}"))
        for name in sorted(set(expected) - set(objects)):
            out.append(Drift(env, schema, "view_dropped", name, "published view is missing"))
    by_table: dict[str, list] = {}
    for s in catalog.served():
        by_table.setdefault(s.table, []).append(s)
    tables = engine.objects(internal)
    for table, served in sorted(by_table.items(), key=lambda kv: kv[1][0].model):
        first, envs = served[0], ", ".join(sorted({s.env for s in served}))
        where = f"{internal}.{table}"
        if first.invalid_reason is not None:
            out.append(
                Drift(
                    envs,
                    internal,
                    "invalid_build_served",
                    where,
                    f"{first.model} awaits its rebuild (sync) after: {first.invalid_reason}",
                )
            )
            continue
        if table not in tables:
            out.append(
                Drift(envs, internal, "table_changed", where, f"physical table of {first.model} is gone")
            )
            continue
        try:
            if first.row_count is None:  # a view build: readable, not counted (that would run it)
                engine.query_columns(f"select * from {qualified(internal, table)}")
                now_rows = None
            else:
                now_rows = engine.count(qualified(internal, table))
        except Exception as exc:  # a segment table under a build's view was dropped
            out.append(Drift(envs, internal, "table_changed", where, f"{first.model} cannot be read: {exc}"))
            continue
        now_cols = engine.columns(internal, table)
        if now_rows != first.row_count or now_cols != first.columns:
            out.append(
                Drift(
                    envs,
                    internal,
                    "table_changed",
                    where,
                    f"{first.model}: built with {first.row_count} rows / {len(first.columns)} columns, "
                    f"now {now_rows} / {len(now_cols)}",
                )
            )
    return out


def repair(catalog: Catalog, drift: list[Drift], consumers: tuple[str, ...] = ()) -> None:
    """Restore every external schema to what the catalog published (one transaction), and mark
    builds whose table changed after its audit as invalid: no plan reuses them, so the next sync
    rebuilds those models (and keeps serving the old tables until the rebuild is audited)."""
    engine = catalog.engine
    with catalog.transaction():
        for d in drift:
            if d.kind == "table_changed":
                catalog.mark_invalid(d.name.split(".", 1)[1], d.detail)
        for env, schema in ((e, s.schema) for e, s in catalog.environments().items()):
            engine.create_schema(schema)
            published = {model: sql for model, (sql, _, _) in catalog.env_views(env).items()}
            for name, kind in engine.objects(schema).items():
                if name not in published or kind != "VIEW":
                    engine.drop(kind, schema, name)
            present = engine.objects(schema)
            for name, select in published.items():
                engine.replace_view(schema, name, select, present.get(name))
            if engine.capabilities.grants:
                engine.grant_read(schema, list(consumers))
            definitions = engine.view_definitions(schema)
            for name in published:
                catalog.set_view_definition(env, name, definitions.get(name))
