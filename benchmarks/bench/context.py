"""What every case gets: the sizes of this mode, a work folder, shared fixtures, and a way to run
one measured step in a fresh child process."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import PROFILE_DIR, spawn

BENCH_DIR = Path(__file__).resolve().parent.parent
CHILD = BENCH_DIR / "child.py"


@dataclass(frozen=True)
class Sizes:
    dag_rows: int  # rows of the source of the 20-model DAG (cases 1, 3, 6, 8, CLI)
    python_rows: int  # rows the Polars model writes (case 2)
    audit_rows: int  # rows of the audited model (case 4)
    publish_rows: tuple[int, int]  # rows per table, small and large (case 5)
    publish_views: int
    publish_big_tables: int  # distinct physical tables at the large size (the views share them)
    storage_commits: int  # case 6
    scale_models: int  # case 7
    scale_branches: int
    incremental_rows: tuple[int, int]  # case 9: source rows of the first build, rows appended after it
    repeats: int  # repetitions of sub-second steps (median reported)


FULL = Sizes(
    5_000_000, 5_000_000, 10_000_000, (100_000, 10_000_000), 200, 8, 20, 1000, 10, (10_000_000, 100_000), 7
)
QUICK = Sizes(50_000, 50_000, 100_000, (1_000, 100_000), 200, 4, 6, 200, 10, (100_000, 1_000), 3)


class ChildFailed(RuntimeError):
    pass


@dataclass
class Ctx:
    quick: bool
    work: Path  # scratch space for repos and warehouses
    out: Path  # results folder
    with_sqlmesh: bool = False
    with_dbt: bool = False
    profile: bool = False
    pg_url: str | None = None  # the PostgreSQL cases' server (see bench/pg.py)
    cache: dict = field(default_factory=dict)  # fixtures shared by cases within one run
    cleanups: list = field(default_factory=list)  # called (last first) when the run ends

    @property
    def sizes(self) -> Sizes:
        return QUICK if self.quick else FULL

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def fresh(self, name: str) -> Path:
        """An empty folder for one scenario (a reused --work folder may hold an older run's)."""
        path = self.work / name
        if path.exists():
            shutil.rmtree(path)
        return self.folder(name)

    def child(self, target: str, timeout: float | None = None, **kwargs) -> dict:
        """Run `module:function(**kwargs)` in a fresh interpreter; return the dict it returns."""
        logs = self.folder("logs")
        stamp = f"{target.replace(':', '.')}.{time.monotonic_ns()}"
        result_path, log = logs / f"{stamp}.json", logs / f"{stamp}.log"
        env = {**os.environ, "PYTHONPATH": str(BENCH_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        if self.profile:
            env[PROFILE_DIR] = str(self.out / "profiles")
        cmd = [sys.executable, str(CHILD), target, json.dumps(kwargs, default=str), str(result_path)]
        run = spawn(cmd, log=log, timeout=timeout or (600 if self.quick else 3600), env=env)
        if run["returncode"] != 0 or not result_path.exists():
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise ChildFailed(f"{target} exited {run['returncode']}:\n{tail}")
        result = json.loads(result_path.read_text())
        result["process_peak_mb"] = run["peak_mb"]
        return result

    def clean_up(self, keep: bool = False) -> None:
        """Run the registered cleanups, last first: drop the throwaway databases (unless `keep`), stop
        a throwaway server."""
        while self.cleanups:
            cleanup = self.cleanups.pop()
            if keep and getattr(cleanup, "database", None):
                print(f"kept PostgreSQL database {cleanup.database}")
                continue
            try:
                cleanup()
            except Exception as exc:  # the others still run
                print(f"cleanup failed: {type(exc).__name__}: {exc}")
