"""Write one build: a new, immutable physical table in the internal schema, plus its catalog row.

The CREATE TABLE and the catalog insert commit together, so a crash mid-build leaves neither: a
later plan can never mistake a half-written table for a build.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace

from gitops_data.engines.base import Engine
from gitops_data.errors import BuildError, GitopsError
from gitops_data.naming import qualified, quote
from gitops_data.plan import BuildRecord
from gitops_data.project.nodes import THIS_TOKEN
from gitops_data.sql import type_sql
from gitops_data.warehouse.catalog import Catalog, now
from gitops_data.warehouse.data_errors import explain_load_error


@dataclass(frozen=True)
class BuildTarget:
    """What a build step writes: the planned build (id, table, version, inputs) of one model."""

    build: BuildRecord
    kind: str
    env: str
    run_id: str | None
    internal_schema: str
    location: str = ""  # the model's file:line, for error messages
    reads: tuple[str, ...] = ()  # a view build: the builds whose tables it selects from
    pre_hooks: tuple[str, ...] = ()  # statements run before it is written (THIS_TOKEN: its table)
    post_hooks: tuple[str, ...] = ()  # ... and after
    data_file: str = ""  # a seed's or file source's file in the repo, for error messages
    scratch: str = ""  # ... and the local copy the engine reads, never named to the user

    def run_hooks(self, engine: Engine, hooks: tuple[str, ...]) -> None:
        this = qualified(self.internal_schema, self.build.table)
        for hook in hooks:
            engine.execute(hook.replace(THIS_TOKEN, this))

    @property
    def model(self) -> str:
        return self.build.model

    def failed(self, exc: Exception) -> BuildError:
        if self.data_file:
            return BuildError(
                explain_load_error(
                    str(exc),
                    model=self.model,
                    kind=self.kind,
                    location=self.location,
                    data_file=self.data_file,
                    scratch=self.scratch,
                )
            )
        where = f" ({self.location})" if self.location else ""
        return BuildError(f"building {self.model!r}{where} failed: {exc}")


def with_casts(engine: Engine, select: str, types: dict[str, str]) -> str:
    """`select` with its columns cast to the declared `types` (canonical type names), in order."""
    if not types:
        return select
    present = engine.query_columns(select)
    if not any(c in types for c in present):
        return select
    items = [
        f"cast({quote(c)} as {type_sql(types[c], engine.dialect)}) as {quote(c)}" if c in types else quote(c)
        for c in present
    ]
    return f"select {', '.join(items)} from ({select}) as q"


def write_build(
    catalog: Catalog, target: BuildTarget, select: str, cast_types: dict[str, str] | None = None
) -> tuple[BuildRecord, dict[str, str]]:
    """CREATE TABLE <planned physical table> AS <select>, recorded in the catalog, in one transaction."""
    engine, internal = catalog.engine, target.internal_schema
    try:
        with catalog.transaction():
            select = with_casts(engine, select, cast_types or {})
            target.run_hooks(engine, target.pre_hooks)
            rows = engine.create_table_as(internal, target.build.table, select)
            if target.post_hooks:
                target.run_hooks(engine, target.post_hooks)
                rows = engine.count(qualified(internal, target.build.table))
            columns = engine.columns(internal, target.build.table)
            rec = replace(target.build, run_id=target.run_id, row_count=rows, created_at=now())
            catalog.record_build(rec, target.kind, target.env, columns, target.reads)
    except Exception as exc:
        if isinstance(exc, BuildError):
            raise
        raise target.failed(exc) from None
    return rec, columns


def write_view(catalog: Catalog, target: BuildTarget, select: str) -> tuple[BuildRecord, dict[str, str]]:
    """CREATE VIEW <planned name> AS <select> over the upstream builds (immutable, so the view is
    too), recorded with the builds it reads so gc keeps them. No row count: that would run it."""
    engine, internal = catalog.engine, target.internal_schema
    try:
        with catalog.transaction():
            target.run_hooks(engine, target.pre_hooks)
            engine.create_view(internal, target.build.table, select, replace=False)
            target.run_hooks(engine, target.post_hooks)
            columns = engine.columns(internal, target.build.table)
            rec = replace(target.build, run_id=target.run_id, row_count=None, created_at=now())
            catalog.record_build(rec, target.kind, target.env, columns, target.reads)
    except Exception as exc:
        raise target.failed(exc) from None
    return rec, columns


def write_alias(
    catalog: Catalog, target: BuildTarget, base: BuildRecord
) -> tuple[BuildRecord, dict[str, str]]:
    """A new build record for `base`'s table: the same data under the model's new fingerprint."""
    if not catalog.existing_builds(target.internal_schema, [base.build_id]):
        raise target.failed(
            GitopsError(f"build {base.build_id}, whose data it keeps, is gone; run with --full to rebuild")
        )
    with catalog.transaction():
        columns, reads = catalog.build_shape(base.build_id)
        rec = replace(target.build, run_id=target.run_id, row_count=base.row_count, created_at=now())
        catalog.record_build(rec, target.kind, target.env, columns, reads)
    return rec, columns


def write_frame(catalog: Catalog, target: BuildTarget, frame, cast_types: dict[str, str]):
    """Build from a Polars/Arrow frame (Python models); the frame goes into the engine through Arrow."""
    with catalog.engine.register_frame(frame, target.internal_schema) as name:
        return write_build(catalog, target, f"select * from {name}", cast_types)


def write_file(
    catalog: Catalog,
    target: BuildTarget,
    data: bytes,
    fmt: str,
    cast_types: dict[str, str],
    data_file: str = "",
):
    """Build from a file's bytes as of the commit (seeds and repo-file sources; `data_file`: its
    path in the repo). The declared column types are the reader's, so a column whose first rows
    look numeric can be declared `varchar`; an error names `data_file`, never the scratch copy."""
    suffix = {"csv": ".csv", "parquet": ".parquet", "json": ".json"}[fmt]
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="gitops_data_")
    target = replace(target, data_file=data_file or target.data_file, scratch=path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        with catalog.engine.register_file(path, fmt, target.internal_schema, cast_types) as name:
            return write_build(catalog, target, f"select * from {name}", cast_types)
    except BuildError:
        raise
    except Exception as exc:  # the engine's reader, outside write_build (PostgreSQL loads it first)
        raise target.failed(exc) from None
    finally:
        os.unlink(path)
