"""Case 7: a project of many models: load + validate, fingerprints, plan, Dagster definitions; and
a Git-ref sensor tick with many branches and nothing new, vs `git for-each-ref`."""

from __future__ import annotations

import json
import random
from pathlib import Path

from bench.datarepo import DataRepo, init_repo
from bench.measure import repeat, step, wall
from bench.report import Row

ID = "7"
TITLE = "project scale"
PER_FILE = 50


def _model(i: int, rng: random.Random) -> str:
    name = f"m{i:04d}"
    ups = ["base"] if i < 10 else rng.sample([f"m{j:04d}" for j in range(i)], k=rng.choice((1, 1, 2)))
    if len(ups) == 1:
        sql = f"select a.id, a.v + {i} as v, a.k from {ups[0]} a where a.k >= 0"
    else:
        sql = f"select a.id, a.v + b.v as v, a.k from {ups[0]} a join {ups[1]} b using (id)"
    lines = [
        f"  - name: {name}",
        f"    description: generated model {i}",
        "    tags: [generated]",
        f"    sql: {sql}",
    ]
    if i % 2 == 0:
        lines += ["    columns:", "      id: {nullable: false}", "      v: {checks: [{ge: 0}]}"]
    return "\n".join(lines)


def project_files(models: int) -> dict[str, str]:
    rng = random.Random(42)
    files = {
        "gitops_data.yaml": "name: bench_scale\n",
        "seeds/base.csv": "id,v,k\n" + "".join(f"{i},{i * 3},{i % 7}\n" for i in range(100)),
        "seeds.yml": "seeds:\n  - name: base\n    path: seeds/base.csv\n",
    }
    bodies = [_model(i, rng) for i in range(models)]
    for part in range(0, models, PER_FILE):
        files[f"models/part_{part // PER_FILE:03d}.yml"] = (
            "models:\n" + "\n".join(bodies[part : part + PER_FILE]) + "\n"
        )
    return files


def publish_everything(repo: str, warehouse: str) -> str:
    """Craft a catalog in which every node of main's head is built, audited and published."""
    from gitops_data.audit.runner import CheckResult
    from gitops_data.engines import open_warehouse
    from gitops_data.fingerprint import project_fingerprints
    from gitops_data.naming import physical_table, qualified
    from gitops_data.plan import BuildRecord, make_plan
    from gitops_data.project.checks import declared_checks
    from gitops_data.project.loader import load_project
    from gitops_data.project.tree import GitTree
    from gitops_data.warehouse.catalog import Catalog, now
    from gitops_data.warehouse.publish import PublishTarget, publish_builds

    sha = DataRepo(repo).head("main")
    project = load_project(GitTree(repo, sha))
    fps, s = project_fingerprints(project), project.settings
    with open_warehouse(warehouse) as engine:
        cat = Catalog(engine, s.meta_schema)
        engine.create_schema(s.internal_schema)
        with engine.transaction():
            for name, node in project.nodes.items():
                rec = BuildRecord(
                    f"{len(name):02d}{name}",
                    name,
                    fps[name],
                    physical_table(name, fps[name], "00000001"),
                    sha,
                    None,
                    100,
                    now(),
                )
                table = qualified(s.internal_schema, rec.table)
                engine.execute(f"create table {table} (id bigint, v bigint, k bigint)")
                cat.record_build(rec, node.kind, "main", {"id": "BIGINT", "v": "BIGINT", "k": "BIGINT"})
                results = [
                    CheckResult(c.name, c.hash, c.severity, True, 0, "") for c in declared_checks(node)
                ]
                if results:
                    cat.record_audits(rec.build_id, None, results, 100)
        built = {n: fps[n] for n, nd in project.nodes.items() if nd.built}
        state = cat.state(s.internal_schema, "main", built)
        plan = make_plan(project, fps, state, "main", s.external_schema, sha)
        if plan.has_work or not plan.ready:
            raise AssertionError("the crafted catalog should leave nothing to build or audit")
        builds = {n: (m.build.build_id, m.build.table) for n, m in plan.models.items() if m.build is not None}
        publish_builds(cat, PublishTarget(plan.env, plan.schema, plan.commit, builds), s.internal_schema)
    return sha


def measure(repo: str, warehouse: str, repeats: int) -> dict:
    """Run in a child: each stage timed on its own, in the order a code server meets them."""
    import dagster as dg

    from gitops_data.deployment.core import Deployment
    from gitops_data.engines import open_warehouse
    from gitops_data.fingerprint import project_fingerprints
    from gitops_data.orchestration.definitions import build_definitions
    from gitops_data.plan import make_plan
    from gitops_data.project.loader import load_project
    from gitops_data.project.tree import GitTree
    from gitops_data.warehouse.catalog import Catalog

    ws = Deployment(repo, warehouse)
    sha = ws.resolve("main")
    with step("scale_load") as load:
        project = load_project(GitTree(repo, sha))
    with step("scale_fingerprints") as fingerprints:
        fps = project_fingerprints(project)
    s = project.settings
    with step("scale_plan") as plan_m:  # what Deployment.plan does, on the project loaded above
        built = {n: fps[n] for n, nd in project.nodes.items() if nd.built}
        with open_warehouse(warehouse) as engine:
            state = Catalog(engine, s.meta_schema).state(s.internal_schema, "main", built)
        plan = make_plan(project, fps, state, "main", s.external_schema, sha)
    if not plan.ready or plan.has_work:
        raise AssertionError("the crafted catalog should make the plan a no-op")
    ws.project(sha), ws.fingerprints(sha)  # what a code server has cached by now
    with step("scale_definitions") as defs_m:
        defs = build_definitions(ws, {"main": sha})
        repo_def = defs.get_repository_def()
    defs_m["assets"] = len(repo_def.asset_graph.get_all_asset_keys())
    sensor = defs.get_sensor_def("git_refs")
    heads = ws.tracked_heads()
    cursor = json.dumps({"heads": heads, "pending": []})
    instance = dg.DagsterInstance.ephemeral()

    def tick() -> None:
        result = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        )
        if result.run_requests or "no new commits" not in (result.skip_message or ""):
            raise AssertionError(f"expected a no-op tick, got {result.skip_message!r}")

    tick_m = repeat(tick, repeats, "scale_sensor_tick")
    git_m = wall(
        ["git", "-C", repo, "for-each-ref", "refs/heads", "--format=%(refname:short) %(objectname)"], repeats
    )
    return {
        "load": load,
        "fingerprints": fingerprints,
        "plan": plan_m,
        "definitions": defs_m,
        "tick": tick_m,
        "git": git_m,
        "refs": len(heads),
        "nodes": len(project.nodes),
    }


def run(ctx) -> list[Row]:
    s = ctx.sizes
    folder = ctx.fresh("scale")
    repo = init_repo(folder / "repo", project_files(s.scale_models))
    for b in range(s.scale_branches - 1):
        repo.git("branch", f"feature/b{b:02d}")
    warehouse = folder / "warehouse.duckdb"
    Path(warehouse).unlink(missing_ok=True)
    publish_everything(str(repo.path), str(warehouse))
    out = ctx.child("cases.scale:measure", repo=str(repo.path), warehouse=str(warehouse), repeats=s.repeats)
    n = out["nodes"]

    def row(letter: str, what: str, m: dict, notes: str, base: dict | None = None) -> Row:
        return Row(
            f"{ID}{letter}",
            what,
            m["seconds"],
            base["seconds"] if base else None,
            ours_mb=m["peak_mb"],
            baseline_mb=base["peak_mb"] if base else None,
            notes=notes,
        )

    per_model = lambda m: f"{m['seconds'] / n * 1000:.2f} ms per node"  # noqa: E731
    return [
        row(
            "a", f"load + validate {n:,} nodes (GitTree + load_project)", out["load"], per_model(out["load"])
        ),
        row("b", f"fingerprints, {n:,} nodes", out["fingerprints"], per_model(out["fingerprints"])),
        row(
            "c",
            f"plan, {n:,} nodes all published (no-op)",
            out["plan"],
            "Catalog.state + make_plan (as Deployment.plan)",
        ),
        row(
            "d",
            f"build_definitions, {n:,} nodes",
            out["definitions"],
            f"{out['definitions']['assets']} asset keys; project already loaded "
            "(7a+7b come on top at a cold start)",
        ),
        row(
            "e",
            f"sensor tick, {out['refs']} branches, nothing new",
            out["tick"],
            f"median of {s.repeats}; baseline: `git for-each-ref` as a subprocess",
            base=out["git"],
        ),
    ]
