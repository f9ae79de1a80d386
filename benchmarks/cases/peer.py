"""Case 8: SQLMesh side by side on the same 20-model DAG and data: initial build, a one-model change
in a dev environment, promotion to prod, rollback by reverting. SQLMesh runs in its own virtualenv
(it needs duckdb<2) through a driver script; ours runs the same steps as branch / merge / revert."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.context import BENCH_DIR
from bench.dag import (
    CHANGED_MODEL,
    MODELS,
    SEGMENT_RULE,
    SEGMENT_RULE_CHANGED,
    SOURCE,
    SOURCE_PATH,
    Scenario,
    built_dag,
)
from bench.datarepo import copy_scenario
from bench.measure import spawn
from bench.report import Row

ID = "8"
TITLE = "peer: SQLMesh"
VENV = BENCH_DIR / ".venv-sqlmesh"
REQUIREMENTS = ["sqlmesh==0.236.4", "duckdb<2"]
DRIVER = BENCH_DIR / "bench" / "sqlmesh_driver.py"
SCHEMA = "bench"


def ensure_venv(log: Path) -> Path:
    """SQLMesh's virtualenv, created on first use. Raises RuntimeError with pip's reason on failure."""
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if marker.exists() and marker.read_text() == " ".join(REQUIREMENTS):
        return python
    with log.open("ab") as fh:
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(VENV)],
            [str(python), "-m", "pip", "install", "-q", *REQUIREMENTS],
        ]
        for cmd in steps:
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"{' '.join(cmd[2:5])} failed: {' / '.join(tail)[:300]}")
    marker.write_text(" ".join(REQUIREMENTS))
    return python


def _model_file(name: str, sql: str) -> str:
    from gitops_data.sql import parse_query, rewrite

    parsed = parse_query(sql)
    body = rewrite(parsed, {ref: f"{SCHEMA}.{ref}" for ref in parsed.references})
    return f"MODEL (name {SCHEMA}.{name}, kind FULL);\n\n{body}\n"


def sqlmesh_project(folder: Path, parquet: Path) -> dict:
    """The same DAG as a SQLMesh project; returns the edit the driver applies for the change step."""
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(
        "gateways:\n  local:\n    connection:\n      type: duckdb\n"
        f"      database: {folder / 'peer.duckdb'}\n"
        "default_gateway: local\nmodel_defaults:\n  dialect: duckdb\n"
    )
    (models / f"{SOURCE}.sql").write_text(
        f"MODEL (name {SCHEMA}.{SOURCE}, kind FULL);\n\nSELECT * FROM read_parquet('{parquet}')\n"
    )
    for name, sql in MODELS:
        (models / f"{name}.sql").write_text(_model_file(name, sql))
    changed_sql = dict(MODELS)[CHANGED_MODEL].replace(SEGMENT_RULE, SEGMENT_RULE_CHANGED)
    return {
        "model_file": str(models / f"{CHANGED_MODEL}.sql"),
        "original": _model_file(CHANGED_MODEL, dict(MODELS)[CHANGED_MODEL]),
        "changed": _model_file(CHANGED_MODEL, changed_sql),
    }


def run_sqlmesh(ctx, python: Path, parquet: Path) -> dict:
    folder = ctx.fresh("sqlmesh")
    edits = sqlmesh_project(folder, parquet)
    steps, result, log = folder / "steps.json", folder / "result.json", ctx.folder("logs") / "sqlmesh.log"
    steps.write_text(json.dumps(edits))
    run = spawn([str(python), str(DRIVER), str(folder), str(steps), str(result)], log=log, cwd=folder)
    if run["returncode"] != 0:
        raise RuntimeError(f"SQLMesh driver failed:\n{log.read_text(errors='replace')[-3000:]}")
    return json.loads(result.read_text())


def run_ours(ctx) -> dict:
    base, initial = built_dag(ctx)
    sc = Scenario(copy_scenario(base.root, ctx.work / "peer_ours"))
    repo = sc.repo
    repo.git("checkout", "-q", "-b", "dev")
    repo.replace("models.yml", SEGMENT_RULE, SEGMENT_RULE_CHANGED)
    repo.commit(f"change {CHANGED_MODEL}")
    out = {"initial": initial, "dev_change": ctx.child("bench.steps:sync_ref", ref="dev", **sc.kwargs())}
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge dev", "dev")
    out["promote"] = ctx.child("bench.steps:sync_ref", ref="main", **sc.kwargs())
    repo.git("revert", "--no-edit", "-m", "1", "HEAD")
    out["rollback"] = ctx.child("bench.steps:sync_ref", ref="main", **sc.kwargs())
    for name in ("promote", "rollback"):
        if out[name]["built"] or out[name]["status"] != "published":
            raise AssertionError(f"{name} should publish without building: {out[name]}")
    return out


def skipped(reason: str) -> list[Row]:
    return [Row(ID, TITLE, status="skipped", notes=f"skipped: {reason}")]


def run(ctx) -> list[Row]:
    if ctx.quick and not ctx.with_sqlmesh:
        return skipped("--quick (add --with-sqlmesh to run it)")
    try:
        python = ensure_venv(ctx.folder("logs") / "sqlmesh_venv.log")
    except RuntimeError as exc:
        return skipped(f"cannot install SQLMesh: {exc}")
    import duckdb

    base, _ = built_dag(ctx)
    theirs = run_sqlmesh(ctx, python, base.repo.path / SOURCE_PATH)
    ours = run_ours(ctx)
    v = theirs["versions"]
    versions = f"gitops-data on duckdb {duckdb.__version__}; SQLMesh {v['sqlmesh']} on duckdb {v['duckdb']}"
    labels = {
        "initial": "initial build (prod)",
        "dev_change": f"change {CHANGED_MODEL} in a dev env",
        "promote": "promote dev to prod (merge)",
        "rollback": "rollback (revert)",
    }
    rows = []
    for letter, (key, label) in zip("abcd", labels.items(), strict=True):
        o, t = ours[key], theirs[key]
        notes = (
            f"built: ours {len(o['built'])}, SQLMesh {len(t['backfilled'])}; SQLMesh Context load "
            f"{t['context_seconds']:.2f} s included"
        )
        rows.append(
            Row(
                f"{ID}{letter}",
                f"{label}, {ctx.sizes.dag_rows:,} rows",
                o["seconds"],
                t["seconds"],
                ours_mb=o["peak_mb"],
                baseline_mb=t["peak_mb"],
                notes=notes + ("; " + versions if letter == "a" else ""),
                details={"sqlmesh": t},
            )
        )
    return rows
