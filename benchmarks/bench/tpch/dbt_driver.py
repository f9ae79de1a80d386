"""Runs inside dbt's own virtualenv (dbt-duckdb pins its own duckdb): loads the TPC-H parquet files
into the warehouse (not timed), then runs each step through dbt's in-process API (`dbtRunner`),
each measured like ours, results as JSON.

usage: python dbt_driver.py <plan.json> <result.json>   (or --count <plan.json>: row counts, as JSON,
       run after the driver exits: dbt keeps its connection open until then)
plan.json: {"project": dir, "warehouse": path, "parquet": dir, "tables": [...], "schema": "main",
            "models": [built model names],
            "steps": [{"name": ..., "files": {relative path: text}, "args": [dbt args],
                       "save_state": folder or null}]}
"""

import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # its neighbours are not dbt's
sys.path.insert(0, str(HERE.parent.parent))
os.environ.pop("GITOPS_BENCH_PROFILE_DIR", None)  # pyinstrument is not installed in this venv
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"

from bench.measure import step  # noqa: E402


def load(plan: dict) -> None:
    import duckdb

    con = duckdb.connect(plan["warehouse"])
    try:
        for t in plan["tables"]:
            path = Path(plan["parquet"]) / f"{t}.parquet"
            con.execute(f"create table {plan['schema']}.{t} as select * from read_parquet('{path}')")
        con.execute("checkpoint")
    finally:
        con.close()


def run_step(runner, project: Path, spec: dict) -> dict:
    for rel, text in spec.get("files", {}).items():
        (project / rel).write_text(text)
    args = [*spec["args"], "--project-dir", str(project), "--profiles-dir", str(project)]
    with step(f"dbt_{spec['name']}") as m:
        res = runner.invoke(args)
    if not res.success:
        raise RuntimeError(f"dbt {' '.join(spec['args'])} failed: {res.exception}")
    results = list(res.result.results) if res.result is not None else []
    m["built"] = sorted(r.node.name for r in results if str(r.status).lower().endswith("success"))
    m["tests_passed"] = sum(str(r.status).lower().endswith("pass") for r in results)
    if spec.get("save_state"):
        state = Path(spec["save_state"])
        state.mkdir(parents=True, exist_ok=True)
        shutil.copy(project / "target" / "manifest.json", state / "manifest.json")
    return m


def count(plan: dict) -> dict:
    import duckdb

    con = duckdb.connect(plan["warehouse"], read_only=True)
    try:
        return {
            name: con.execute(f'select count(*) from {plan["schema"]}."{name}"').fetchone()[0]
            for name in plan["models"]
        }
    finally:
        con.close()


def main() -> None:
    if sys.argv[1] == "--count":
        print(json.dumps(count(json.loads(Path(sys.argv[2]).read_text()))))
        return
    plan_path, result_path = sys.argv[1:3]
    plan = json.loads(Path(plan_path).read_text())
    project = Path(plan["project"])
    load(plan)
    from importlib.metadata import version

    import duckdb
    from dbt.adapters.duckdb import DuckDBAdapter  # noqa: F401  (imported before any timing)
    from dbt.cli.main import dbtRunner

    out: dict = {
        "versions": {
            "dbt": version("dbt-core"),
            "dbt_duckdb": version("dbt-duckdb"),
            "duckdb": duckdb.__version__,
        }
    }
    for spec in plan["steps"]:
        out[spec["name"]] = run_step(dbtRunner(), project, spec)
    Path(result_path).write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
