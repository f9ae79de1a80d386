"""Runs inside SQLMesh's own virtualenv (SQLMesh needs duckdb<2): the peer steps through SQLMesh's
in-process Context API, each measured like ours, results as JSON.

usage: python sqlmesh_driver.py <project dir> <steps.json> <result.json>
steps.json: {"model_file": path, "original": text, "changed": text}
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.pop("GITOPS_BENCH_PROFILE_DIR", None)  # pyinstrument is not installed in this venv

from bench.measure import step  # noqa: E402


def _plan(project: str, env: str, name: str) -> dict:
    from sqlmesh import Context

    with step(f"sqlmesh_{name}") as m:
        t0 = time.perf_counter()
        ctx = Context(paths=[project])
        m["context_seconds"] = time.perf_counter() - t0
        plan = ctx.plan(env, auto_apply=True, no_prompts=True, skip_tests=True)
    m["backfilled"] = sorted(s.snapshot_id.name for s in plan.missing_intervals)
    return m


def main() -> None:
    project, steps_path, result_path = sys.argv[1:4]
    import duckdb
    import sqlmesh

    edits = json.loads(Path(steps_path).read_text())
    model_file = Path(edits["model_file"])
    out = {"versions": {"sqlmesh": sqlmesh.__version__, "duckdb": duckdb.__version__}}
    out["initial"] = _plan(project, "prod", "initial")
    model_file.write_text(edits["changed"])
    out["dev_change"] = _plan(project, "dev", "dev_change")
    out["promote"] = _plan(project, "prod", "promote")
    model_file.write_text(edits["original"])
    out["rollback"] = _plan(project, "prod", "rollback")
    Path(result_path).write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
