"""Dagster assets and asset checks for one environment at one commit (no `from __future__ import
annotations` here: Dagster reads the type hints of asset functions at definition time).

Asset keys are `[<env schema>, <model>]` (e.g. `analytics/orders`, `analytics__feature_x/orders`),
grouped by environment, so every build and check of a branch is visible in the UI next to
production's. A step reads the commit from its run's tags and builds exactly that commit.
"""


import json

import dagster as dg
import duckdb

from gitops_data import progress
from gitops_data.audit.declared import declared_checks
from gitops_data.audit.runner import run_checks
from gitops_data.errors import BuildError
from gitops_data.gitrepo import read_file
from gitops_data.naming import qualified
from gitops_data.orchestration.io_manager import BuildOutput, run_commit
from gitops_data.orchestration.resources import GitopsResource
from gitops_data.plan import BuildRecord
from gitops_data.python_models import run_python_model
from gitops_data.spec.project import Node, Project
from gitops_data.sql import parse_query, rewrite
from gitops_data.warehouse.builder import BuildTarget
from gitops_data.warehouse.catalog import published_builds, record_audits
from gitops_data.warehouse.connection import open_warehouse, step_connection
from gitops_data.warehouse.segments import Layout, incremental_select, snapshot_select
from gitops_data.workspace import Environment, Workspace

IO_MANAGER = "gitops_io"
_KIND = {"sql": "sql", "python": "python", "seed": "csv", "source": "file", "table": "table", "snapshot": "snapshot"}


def asset_key(env: Environment, model: str) -> dg.AssetKey:
    return dg.AssetKey([env.key_prefix, model])


def _upstreams(ws: Workspace, con, sha: str, node: Node, env: str, run_id: str) -> tuple[dict[str, str], dict[str, str], bool]:
    """For a node's upstreams: lower-case name -> qualified table to read, name -> data version
    read, and whether the result follows from the fingerprint alone (no external table, no
    accumulated history upstream)."""
    project = ws.project(sha)
    tables, inputs = {}, {}
    deterministic = not node.segmented
    for dep in node.deps:
        up = project.nodes[dep]
        if up.kind == "table":
            tables[dep.lower()] = up.table
            deterministic = False
            continue
        build = ws.find_build(con, sha, dep, env, run_id)
        if build is None:
            raise BuildError(f"model {node.name!r}: upstream {dep!r} has no build for commit {sha[:10]}")
        tables[dep.lower()] = qualified(project.settings.internal_schema, build.table)
        inputs[dep] = build.data_version
        deterministic = deterministic and build.data_version == build.fingerprint
    return tables, inputs, deterministic


def _segment_base(ws: Workspace, con, sha: str, node: Node, env: str) -> BuildRecord | None:
    """The build a new segment goes on top of: the current build of this definition, or for a
    forward-only change the build the environment serves now; None means a full build."""
    base = ws.find_build(con, sha, node.name, env, None)
    if base is None and node.incremental is not None and node.incremental.forward_only:
        meta = ws.project(sha).settings.meta_schema
        base = published_builds(con, meta, env).get(env, {}).get(node.name)
    return base


def compute(context: dg.AssetExecutionContext, gitops: GitopsResource, env: Environment,
            default_commit: str, name: str, inputs: dict) -> BuildOutput:
    """The body of every model asset: decide what to write for `name` at the run's commit."""
    try:
        return _compute(context, gitops, env, default_commit, name, inputs)
    except duckdb.Error as exc:
        raise BuildError(f"building {name!r} failed: {exc}") from None


def _compute(context: dg.AssetExecutionContext, gitops: GitopsResource, env: Environment,
             default_commit: str, name: str, inputs: dict) -> BuildOutput:
    sha, env_name = run_commit(context.run.tags, env.name, default_commit)
    ws = gitops.workspace
    project = ws.project(sha)
    node = project.nodes.get(name)
    if node is None:
        raise BuildError(f"model {name!r} does not exist at commit {sha[:10]}; reload the code location")
    s = project.settings
    target = BuildTarget(name, node.kind, ws.fingerprints(sha)[name], sha, env_name, context.run.run_id,
                         s.internal_schema, s.meta_schema)
    progress.emit("building", name, node.kind)
    if node.kind in ("sql", "snapshot", "python"):
        with open_warehouse(ws.warehouse) as con:
            tables, used, deterministic = _upstreams(ws, con, sha, node, env_name, context.run.run_id)
            if node.kind == "python":
                out = BuildOutput(target, inputs=used, cast_types=node.declared_types, deterministic=deterministic)
            elif not node.segmented:
                return BuildOutput(target, select=rewrite(parse_query(node.sql), tables), inputs=used,
                                   deterministic=deterministic)
            else:
                base = _segment_base(ws, con, sha, node, env_name)
                base_view = qualified(s.internal_schema, base.table) if base else None
                if node.snapshot is not None:
                    select = snapshot_select(con, tables[node.deps[0].lower()], node.snapshot, base_view)
                else:
                    select = incremental_select(con, rewrite(parse_query(node.sql), tables), node.incremental, base_view)
                return BuildOutput(target, select=select, inputs=used, base=base,
                                   layout=Layout.of(node.incremental, node.snapshot), cast_types=node.declared_types)
        out.frame = run_python_model(node, sha, inputs)
        return out
    data = read_file(ws.repo, sha, node.data_path)
    return BuildOutput(target, file_bytes=data, file_format=node.data_format, cast_types=node.declared_types)


def _model_asset(env: Environment, sha: str, node: Node, fingerprint: str) -> dg.AssetsDefinition:
    """One step per model: build it (when selected), then run its checks (when selected).

    Checks live in the same step as the build (check specs of a subsettable multi-asset): no
    extra Dagster step per model, a blocking failure still stops the downstream steps, and a
    check-only change runs the step with only the checks selected (a re-audit, no rebuild).
    """
    key = asset_key(env, node.name)
    ins = {dep: dg.AssetIn(key=asset_key(env, dep)) for dep in node.deps} if node.kind == "python" else {}
    metadata = {"gitops/kind": node.kind, "gitops/file": f"{node.file}:{node.line}", "gitops/commit": sha}
    if node.columns:
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[dg.TableColumn(c, spec.type or "?", description=spec.description) for c, spec in node.columns.items()]
        )
    spec = dg.AssetSpec(
        key, deps=[asset_key(env, d) for d in node.deps],
        group_name=env.key_prefix, description=node.description, kinds={"duckdb", _KIND[node.kind]},
        code_version=fingerprint, metadata=metadata, owners=[node.owner] if node.owner and "@" in node.owner else None,
        tags={t: "" for t in node.tags if t.replace("_", "").replace("-", "").isalnum()},
    ).with_io_manager_key(IO_MANAGER)
    check_specs = [dg.AssetCheckSpec(c.name, asset=key, blocking=c.blocking, description=c.description)
                   for c in declared_checks(node)]

    @dg.multi_asset(specs=[spec], check_specs=check_specs, can_subset=True, ins=ins,
                    name=f"{env.key_prefix}__{node.name}")
    def _step(context: dg.AssetExecutionContext, gitops: GitopsResource, **inputs):
        with step_connection(gitops.warehouse):
            if key in context.selected_asset_keys:
                # the IO manager writes the build as soon as it is yielded, before the checks run
                yield dg.Output(compute(context, gitops, env, sha, node.name, inputs),
                                output_name=context.assets_def.get_output_name_for_asset_key(key))
            if context.selected_asset_check_keys:
                yield from audit(context, gitops, env, sha, node.name)

    return _step


def _external_asset(env: Environment, node: Node) -> dg.AssetSpec:
    return dg.AssetSpec(
        asset_key(env, node.name), description=node.description or f"external table {node.table}",
        group_name=env.key_prefix, kinds={"duckdb", "table"}, metadata={"table": node.table},
    ).with_io_manager_key(IO_MANAGER)


def audit(context: dg.AssetExecutionContext, gitops: GitopsResource, env: Environment,
          default_commit: str, name: str):
    """The body of every model's checks: run the selected checks on the build of the run's commit."""
    sha, env_name = run_commit(context.run.tags, env.name, default_commit)
    ws = gitops.workspace
    project = ws.project(sha)
    node = project.nodes.get(name)
    declared = {c.name: c for c in declared_checks(node)} if node else {}
    selected = sorted(k.name for k in context.selected_asset_check_keys)
    to_run = [declared[n] for n in selected if n in declared]
    s = project.settings
    with open_warehouse(ws.warehouse) as con:
        build = ws.find_build(con, sha, name, env_name, context.run.run_id) if node else None
        if build is None:
            raise BuildError(f"model {name!r} has no build for commit {sha[:10]} to audit")

        def resolve(model: str) -> str:
            other = ws.find_build(con, sha, model, env_name, context.run.run_id)
            if other is None:
                raise ValueError(f"{model!r} has no build for commit {sha[:10]}")
            return qualified(s.internal_schema, other.table)

        results = run_checks(con, s.internal_schema, build.table, to_run, resolve)
        record_audits(con, s.meta_schema, build.build_id, context.run.run_id, results, build.row_count)
    key = asset_key(env, name)
    for r in results:
        progress.emit("check_" + ("passed" if r.passed else "failed"), name, f"{r.name}: {r.message}")
        yield dg.AssetCheckResult(
            asset_key=key, check_name=r.name, passed=r.passed,
            severity=dg.AssetCheckSeverity.ERROR if r.severity == "error" else dg.AssetCheckSeverity.WARN,
            metadata={
                "failed_rows": dg.MetadataValue.int(int(r.failed_rows or 0)),
                "message": dg.MetadataValue.text(r.message),
                "sample": dg.MetadataValue.json(json.loads(json.dumps(r.sample, default=str))),
                "build_id": dg.MetadataValue.text(build.build_id),
                "physical_table": dg.MetadataValue.text(f"{s.internal_schema}.{build.table}"),
                "commit": dg.MetadataValue.text(sha),
            },
        )
    for n in selected:
        if n not in declared:
            yield dg.AssetCheckResult(
                asset_key=key, check_name=n, passed=False, severity=dg.AssetCheckSeverity.WARN,
                metadata={"message": dg.MetadataValue.text(f"check {n!r} is not declared at commit {sha[:10]}")},
            )


def environment_assets(ws: Workspace, env: Environment, sha: str, project: Project) -> list:
    """All assets (with their checks) and external assets of one environment at one commit."""
    fps = ws.fingerprints(sha)
    out: list = []
    for node in project.nodes.values():
        if node.kind == "table":
            out.append(_external_asset(env, node))
            continue
        out.append(_model_asset(env, sha, node, fps[node.name]))
    return out
