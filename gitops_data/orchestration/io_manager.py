"""The IO manager: every asset output becomes a new physical table in the internal schema.

Assets hand it a `BuildOutput` (the SQL to run inside DuckDB, a Polars frame, or a file's bytes);
it writes the build, records it in the catalog, and attaches the build's metadata. Inputs of Python
models are loaded from the build of the upstream that belongs to the run's commit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import dagster as dg
import polars as pl

from gitops_data import progress
from gitops_data.naming import qualified
from gitops_data.orchestration import tags as T
from gitops_data.orchestration.resources import GitopsResource
from gitops_data.plan import BuildRecord
from gitops_data.warehouse.builder import BuildTarget, write_build, write_file, write_frame
from gitops_data.warehouse.connection import open_warehouse
from gitops_data.warehouse.segments import Layout, write_segmented


@dataclass
class BuildOutput:
    """What an asset step produced, for the IO manager to write. Exactly one payload is set."""

    target: BuildTarget
    select: str | None = None
    frame: pl.DataFrame | None = None
    file_bytes: bytes | None = None
    file_format: str | None = None
    cast_types: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # upstream -> data version read
    deterministic: bool = True  # the data follows from the fingerprint (see BuildRecord.data_version)
    layout: Layout | None = None  # set for segmented builds (incremental models, snapshots)
    base: BuildRecord | None = None  # the build a new segment goes on top of


def build_metadata(target: BuildTarget, rec, columns: dict[str, str]) -> dict:
    return {
        "commit": dg.MetadataValue.text(target.commit),
        "environment": dg.MetadataValue.text(target.env),
        "fingerprint": dg.MetadataValue.text(target.fingerprint),
        "build_id": dg.MetadataValue.text(rec.build_id),
        "physical_table": dg.MetadataValue.text(f"{target.internal_schema}.{rec.table}"),
        "dagster/row_count": dg.MetadataValue.int(rec.row_count),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=c, type=t) for c, t in columns.items()]
        ),
    }


def run_commit(run_tags: dict, env: str, default_commit: str) -> tuple[str, str]:
    """(commit, env) a run builds: pinned by its tags; the definitions' commit when untagged (UI)."""
    return run_tags.get(T.COMMIT, default_commit), run_tags.get(T.ENV, env)


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Writes builds to DuckDB; reads upstream builds as Polars LazyFrames for Python models."""

    gitops: GitopsResource
    # asset key prefix (env schema) -> [env name, commit the definitions were loaded at]
    bindings: dict[str, list[str]] = {}

    def handle_output(self, context: dg.OutputContext, obj: BuildOutput) -> None:
        t0 = time.perf_counter()
        target = obj.target
        with open_warehouse(self.gitops.warehouse) as con:
            if obj.layout is not None:
                rec, columns = write_segmented(con, target, obj.select, obj.base, obj.layout, obj.cast_types, obj.inputs)
            elif obj.select is not None:
                rec, columns = write_build(con, target, obj.select, obj.cast_types, obj.inputs, obj.deterministic)
            elif obj.frame is not None:
                rec, columns = write_frame(con, target, obj.frame, obj.cast_types, obj.inputs, obj.deterministic)
            else:
                rec, columns = write_file(con, target, obj.file_bytes or b"", obj.file_format or "csv", obj.cast_types)
        context.add_output_metadata(build_metadata(target, rec, columns))
        how = ""
        if obj.layout is not None and obj.base is not None:
            how = f", {rec.row_count - (obj.base.row_count or 0):+,} on build {obj.base.build_id} (new segment)"
        progress.emit("built", target.model, f"{rec.row_count:,} rows{how} -> {rec.table} ({time.perf_counter() - t0:.2f}s)")

    def load_input(self, context: dg.InputContext) -> pl.LazyFrame:
        key = context.upstream_output.asset_key
        prefix, model = key.path[0], key.path[-1]
        run_tags = context.step_context.run_tags if context.step_context else {}
        env_name, default_commit = self.bindings.get(prefix, [prefix, ""])
        sha, env = run_commit(run_tags, env_name, default_commit)
        ws = self.gitops.workspace
        node = ws.project(sha).nodes[model]
        with open_warehouse(ws.warehouse) as con:
            if node.kind == "table":
                return con.sql(f"select * from {node.table}").pl().lazy()
            build = ws.find_build(con, sha, model, env, context.step_context.run_id)
            if build is None:
                raise dg.Failure(f"input {model!r} has no build for commit {sha[:10]}; build it first")
            settings = ws.project(sha).settings
            return con.sql(f"select * from {qualified(settings.internal_schema, build.table)}").pl().lazy()
