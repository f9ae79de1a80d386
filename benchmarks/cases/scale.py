"""Case 7: a generated project of many models (three layers, with checks), as gitops-data YAML and as
a dbt project: cold `validate` (CLI and in-process), re-validate after a one-file change, `plan`
after a one-model change (in process and CLI), `build_definitions`, and a Git-ref sensor tick over
10 branches with nothing new (a real Dagster instance), vs `git for-each-ref`."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

from bench.datarepo import DataRepo, dagster_home, init_repo
from bench.measure import repeat, spawn, step, wall
from bench.report import Row
from bench.scale_project import change_one_model, files

ID = "7"
TITLE = "project scale"
VARIANTS = ("yaml", "dbt")
CHANGED = "feature/change"  # the branch whose head changes one model
TARGETS = {  # (variant, step) -> seconds (issues 23, 24)
    ("yaml", "validate"): 2.0,
    ("yaml", "plan"): 1.0,
    ("yaml", "tick"): 0.5,
    ("dbt", "validate"): 5.0,
    ("dbt", "revalidate"): 1.0,
    ("dbt", "tick"): 0.5,
}


def publish_everything(repo: str, warehouse: str) -> str:
    """Craft a catalog in which every node of main's head is built, audited and published."""
    from gitops_data.audit.runner import CheckResult
    from gitops_data.engines import open_warehouse
    from gitops_data.fingerprint import project_fingerprints
    from gitops_data.naming import physical_table, qualified
    from gitops_data.plan import BuildRecord, make_plan
    from gitops_data.plan.steps import CheckState
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
        with engine.transaction():  # checks that read other models count for the versions they read
            for m in plan.models.values():
                pending = [c for c in m.checks if c.state == CheckState.PENDING]
                if pending and m.build is not None:
                    results = [CheckResult(c.name, c.hash, c.check.severity, True, 0, "") for c in pending]
                    cat.record_audits(m.build.build_id, None, results, 100)
        state = cat.state(s.internal_schema, "main", built)
        plan = make_plan(project, fps, state, "main", s.external_schema, sha)
        if plan.has_work or not plan.ready:
            raise AssertionError("the crafted catalog should leave nothing to build or audit")
        builds = {n: (m.build.build_id, m.build.table) for n, m in plan.models.items() if m.build is not None}
        publish_builds(cat, PublishTarget(plan.env, plan.schema, plan.commit, builds), s.internal_schema)
    return sha


def measure_load(repo: str, base: str, changed: list[str]) -> dict:
    """Run in a child: a cold load of `base` (imports done), then each of `changed` (one file
    differs from `base`) in the same process, as `validate` and a code server meet them."""
    from gitops_data.project.loader import load_project
    from gitops_data.project.tree import GitTree

    with step("scale_cold_load") as cold:
        project = load_project(GitTree(repo, base))
    again = []
    for i, sha in enumerate(changed):
        with step(f"scale_revalidate_{i}") as m:
            load_project(GitTree(repo, sha))
        again.append(m)
    return {"cold": cold, "again": again, "nodes": len(project.nodes)}


def measure_serve(repo: str, warehouse: str, home: str, base: str, changed: list[str], repeats: int) -> dict:
    """Run in a child: plans of one-model changes after the served commit's plan (as a sensor or a
    code server meets them), `build_definitions`, and no-op ticks of the Git-ref sensor."""
    import dagster as dg

    from gitops_data.deployment.core import Deployment
    from gitops_data.orchestration.definitions import LOCATION, build_definitions
    from gitops_data.orchestration.sensors import git_ref_sensor

    ws = Deployment(repo, warehouse)
    env = ws.environment(CHANGED)
    ws.plan(base, env)
    plans = []
    for i, sha in enumerate(changed):
        with step(f"scale_plan_{i}") as m:
            plan = ws.plan(sha, env)
        m["build"] = len(plan.to_build)
        if not m["build"]:
            raise AssertionError(f"a one-model change should have something to build ({sha[:10]})")
        plans.append(m)
    with step("scale_definitions") as defs_m:
        defs = build_definitions(ws, {"main": base})
        repo_def = defs.get_repository_def()
    defs_m["assets"] = len(repo_def.asset_graph.get_all_asset_keys())
    os.environ["DAGSTER_HOME"] = home  # the instance's storages live there (the repo's dagster.yaml)
    instance = dg.DagsterInstance.get()
    heads = ws.tracked_heads()
    sensor = git_ref_sensor(ws, {"main": base}, ws.project(base), LOCATION)
    cursor = json.dumps({"heads": heads, "pending": []})

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
    return {"plans": plans, "definitions": defs_m, "tick": tick_m, "git": git_m, "refs": len(heads)}


def _sibling_commits(repo: DataRepo, variant: str, models: int, count: int) -> list[str]:
    """`count` commits, each main's head with one other model's SQL changed (none on a branch)."""
    shas = []
    for j in range(count):
        index = models // 2 + j * 7  # intermediate models, each with a downstream
        path, text = change_one_model(variant, models, index, f" + {j + 1} - {j + 1}")
        repo.git("checkout", "-q", "-B", "scratch", "main")
        repo.write(path, text)
        shas.append(repo.commit(f"change one model ({index})"))
    repo.git("checkout", "-q", "main")
    repo.git("branch", "-q", "-D", "scratch")
    return shas


def _stats(seconds: list[float]) -> dict:
    return {"min": min(seconds), "median": statistics.median(seconds), "all": seconds}


def _row(key: str, what: str, target: tuple[str, str] | None, runs: list[float], notes: str, **kw) -> Row:
    """A row of the median of `runs`; `target`: (variant, step) of a target (full size only)."""
    st = _stats(runs)
    limit = TARGETS.get(target) if target else None
    return Row(
        key,
        what,
        st["median"],
        target=f"<= {limit:g} s" if limit else "-",
        limit=limit,
        limit_on="ours",
        notes=f"median of {len(runs)} (min {st['min']:.3f} s); {notes}",
        details={"seconds": st},
        **kw,
    )


def run_variant(ctx, variant: str) -> list[Row]:
    s, full = ctx.sizes, not ctx.quick
    cold = min(3, s.repeats)  # fresh processes of 5-15 s each: 3 are enough for a min and a median
    folder = ctx.fresh(f"scale_{variant}")
    repo = init_repo(folder / "repo", files(variant, s.scale_models))
    changed = _sibling_commits(repo, variant, s.scale_models, 3)
    for b in range(s.scale_branches - 2):
        repo.git("branch", f"feature/b{b:02d}")
    repo.git("branch", CHANGED, changed[0])
    warehouse = folder / "warehouse.duckdb"
    Path(warehouse).unlink(missing_ok=True)
    home = dagster_home(folder / "dagster_home")
    base = publish_everything(str(repo.path), str(warehouse))
    exe = str(Path(sys.executable).parent / "gitops-data")
    # As an installed package runs: Python may write its byte-code caches (a session that sets
    # PYTHONDONTWRITEBYTECODE compiles every module of every import again, ~2 s per process here),
    # written by one untimed run first.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["DAGSTER_HOME"] = str(home)
    common = [exe, "--repo", str(repo.path), "--warehouse", str(warehouse)]
    spawn([*common, "validate"], env=env)
    cli_validate = wall([*common, "validate"], cold, env=env)
    cli_plan = wall([*common, "plan", "--ref", CHANGED], cold, env=env)
    loads = [
        ctx.child("cases.scale:measure_load", repo=str(repo.path), base=base, changed=changed)
        for _ in range(cold)
    ]
    serve = ctx.child(
        "cases.scale:measure_serve",
        repo=str(repo.path),
        warehouse=str(warehouse),
        home=str(home),
        base=base,
        changed=changed,
        repeats=s.repeats,
    )
    n = loads[0]["nodes"]
    v = "y" if variant == "yaml" else "d"
    label = "YAML" if variant == "yaml" else "dbt"
    builds = sorted({p["build"] for p in serve["plans"]})
    rows = [
        _row(
            f"{ID}{v}a",
            f"{label}: cold `gitops-data validate`, {n:,} nodes",
            full and (variant, "validate"),
            cli_validate["all_seconds"],
            "a fresh process each (the working copy; imports included, byte-code cached)",
            ours_mb=cli_validate["peak_mb"],
        ),
        _row(
            f"{ID}{v}b",
            f"{label}: cold load_project, {n:,} nodes",
            full and (variant, "validate"),
            [r["cold"]["seconds"] for r in loads],
            "GitTree + load_project in a fresh child (imports done)",
            ours_mb=max(r["cold"]["peak_mb"] for r in loads),
        ),
        _row(
            f"{ID}{v}c",
            f"{label}: re-validate after a one-file change",
            full and (variant, "revalidate"),
            [m["seconds"] for r in loads for m in r["again"]],
            "load_project of a commit with one model's file changed, in the process that loaded its parent",
        ),
        _row(
            f"{ID}{v}d",
            f"{label}: plan after a one-model change (in process)",
            full and (variant, "plan"),
            [m["seconds"] for m in serve["plans"]],
            f"Deployment.plan of a branch commit, parent planned before; {builds} model(s) to build",
        ),
        _row(
            f"{ID}{v}e",
            f"{label}: `gitops-data plan` after a one-model change",
            None,
            cli_plan["all_seconds"],
            "a fresh process each",
            ours_mb=cli_plan["peak_mb"],
        ),
        _row(
            f"{ID}{v}f",
            f"{label}: sensor tick, {serve['refs']} branches, nothing new",
            full and (variant, "tick"),
            serve["tick"]["all_seconds"],
            "real Dagster instance (SQLite, tmp dir); baseline: `git for-each-ref` as a subprocess",
            baseline=serve["git"]["seconds"],
            ours_mb=serve["tick"]["peak_mb"],
        ),
    ]
    if variant == "yaml":
        d = serve["definitions"]
        rows.append(
            Row(
                f"{ID}{v}g",
                f"{label}: build_definitions, {n:,} nodes",
                d["seconds"],
                ours_mb=d["peak_mb"],
                notes=f"{d['assets']} asset keys; project already loaded",
            )
        )
    return rows


def run(ctx) -> list[Row]:
    return [row for variant in VARIANTS for row in run_variant(ctx, variant)]
