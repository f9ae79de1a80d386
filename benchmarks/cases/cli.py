"""The CLI with nothing to do: `gitops-data sync --ref main` on an up-to-date warehouse (wall time of
the whole process), vs the least a program must do to know that (git rev-parse + one catalog read)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.dag import Scenario, built_dag
from bench.datarepo import copy_scenario
from bench.measure import spawn, wall
from bench.report import Row

ID = "cli"
TITLE = "CLI `sync` with nothing to build"
FLOOR = """
import subprocess, sys, duckdb
git = subprocess.run(["git", "-C", sys.argv[1], "rev-parse", "main"], capture_output=True, text=True)
head = git.stdout.strip()
con = duckdb.connect(sys.argv[2], read_only=True)
assert con.execute("select commit from gitops_meta.environments where env = 'main'").fetchone()[0] == head
"""


def run(ctx) -> list[Row]:
    base, _ = built_dag(ctx)
    sc = Scenario(copy_scenario(base.root, ctx.work / "cli"))
    exe = str(Path(sys.executable).parent / "gitops-data")
    cmd = [exe, "--repo", str(sc.repo.path), "--warehouse", str(sc.warehouse), "sync", "--ref", "main"]
    env = {**os.environ, "DAGSTER_HOME": str(sc.home)}
    log = ctx.folder("logs") / "cli_sync.log"
    first = spawn(cmd, log=log, env=env)
    if first["returncode"] != 0 or "nothing to do" not in log.read_text():
        raise AssertionError(f"`gitops-data sync` should find nothing to do:\n{log.read_text()[-2000:]}")
    repeats = ctx.sizes.repeats
    ours = wall(cmd, repeats, env=env)
    floor = wall([sys.executable, "-c", FLOOR, str(sc.repo.path), str(sc.warehouse)], repeats)
    return [
        Row(
            ID,
            TITLE,
            ours["seconds"],
            floor["seconds"],
            target="<= 1.5 s",
            limit=1.5,
            limit_on="ours",
            ours_mb=ours["peak_mb"],
            baseline_mb=floor["peak_mb"],
            notes=f"median of {repeats} process runs; baseline: python + duckdb import, git rev-parse, one "
            "catalog read; memory: whole-process peak RSS (wait4)",
        )
    ]
