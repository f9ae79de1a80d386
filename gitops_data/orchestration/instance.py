"""The Dagster instance the CLI runs and records in."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from gitops_data.engines.duckdb import warehouse_lock

_DAGSTER_YAML = """# written by gitops-data: local SQLite storage, no telemetry
telemetry:
  enabled: false
"""


def dagster_instance() -> dg.DagsterInstance:
    """The Dagster instance in DAGSTER_HOME (default: .gitops_data/dagster_home, created if missing)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path(".gitops_data/dagster_home").resolve())
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    # Two CLIs starting on a fresh home would race creating its SQLite schemas: serialize them.
    with warehouse_lock(Path(home) / ".gitops_data"):
        config = Path(home) / "dagster.yaml"
        if not config.exists():
            tmp = config.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(_DAGSTER_YAML)
            os.replace(tmp, config)
        return dg.DagsterInstance.get()
