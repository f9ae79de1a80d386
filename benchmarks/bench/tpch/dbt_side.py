"""The dbt side of the TPC-H case: dbt-duckdb in its own virtualenv, benchmarks/.venv-dbt (created on
first use), driven by dbt_driver.py through dbt's in-process API.

The same models and materializations as a dbt project (`{{ config(materialized=...) }}`, `ref()`,
`source()`), `threads: 2`. The change steps run what a dbt user runs without virtual environments:
the changed models and their downstream (`state:modified+` against the previous production run's
manifest); the branch runs in a dev schema with `--defer` to production."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench import sidevenv
from bench.context import BENCH_DIR
from bench.measure import spawn
from bench.tpch.models import (
    ADDITIVE_MODEL,
    BREAKING_MODEL,
    SOURCE_SCHEMA,
    TABLES,
    additive,
    breaking,
    dbt_model_file,
    dbt_path,
    dbt_project_files,
)

VENV = BENCH_DIR / ".venv-dbt"
REQUIREMENTS = ["dbt-core==1.11.*", "dbt-duckdb==1.11.1", "duckdb==1.5.6"]
DRIVER = Path(__file__).with_name("dbt_driver.py")


def ensure_venv(log: Path) -> Path:
    """dbt's python; raises sidevenv.Unavailable when pip cannot install it."""
    return sidevenv.ensure(VENV, REQUIREMENTS, log)


def _file(ms, name: str) -> dict[str, str]:
    names = {m.name for m in ms}
    m = next(m for m in ms if m.name == name)
    return {dbt_path(m): dbt_model_file(m, names)}


def steps(ms, state: Path) -> list[dict]:
    """initial build; the breaking change in a dev schema; merge (prod); revert (prod); the additive
    change (prod). Each change runs `state:modified+` against the manifest of the run before it."""
    changed, grown = breaking(ms), additive(ms)
    modified = ["run", "-s", "state:modified+", "--state"]
    return [
        {"name": "initial", "args": ["run"], "save_state": str(state / "prod0")},
        {
            "name": "branch",
            "files": _file(changed, BREAKING_MODEL),
            "args": [*modified, str(state / "prod0"), "--defer", "--target", "dev"],
        },
        {"name": "merge", "args": [*modified, str(state / "prod0")], "save_state": str(state / "merged")},
        {
            "name": "revert",
            "files": _file(ms, BREAKING_MODEL),
            "args": [*modified, str(state / "merged")],
            "save_state": str(state / "reverted"),
        },
        {
            "name": "additive",
            "files": _file(grown, ADDITIVE_MODEL),
            "args": [*modified, str(state / "reverted")],
        },
    ]


def run(
    python: Path,
    folder: Path,
    ms,
    parquet: Path,
    log: Path,
    extra: dict[str, str] | None = None,
    plan_steps: list[dict] | None = None,
    threads: int = 2,
) -> dict:
    """Write the dbt project (plus the files `extra`) into `folder`, run the driver (`plan_steps`,
    default `steps`); the steps' measurements and row counts."""
    project = folder / "project"
    warehouse = folder / "dbt.duckdb"
    for rel, text in {**dbt_project_files(ms, str(warehouse), threads), **(extra or {})}.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    plan = {
        "project": str(project),
        "warehouse": str(warehouse),
        "parquet": str(parquet),
        "tables": TABLES,
        "schema": SOURCE_SCHEMA,
        "models": [m.name for m in ms if m.built],
        "steps": plan_steps if plan_steps is not None else steps(ms, folder / "state"),
    }
    plan_path, result = folder / "plan.json", folder / "result.json"
    plan_path.write_text(json.dumps(plan))
    env_run = spawn([str(python), str(DRIVER), str(plan_path), str(result)], log=log, cwd=project)
    if env_run["returncode"] != 0:
        raise RuntimeError(f"dbt driver failed:\n{log.read_text(errors='replace')[-3000:]}")
    out = json.loads(result.read_text())
    counted = subprocess.run(
        [str(python), str(DRIVER), "--count", str(plan_path)], capture_output=True, text=True, check=False
    )
    if counted.returncode != 0:
        raise RuntimeError(f"counting dbt's rows failed:\n{counted.stderr[-2000:]}")
    out["rows"] = json.loads(counted.stdout)
    return out
