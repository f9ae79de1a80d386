"""A reconstructable Dagster job that builds every asset of one environment with the multiprocess
executor (test_faults.py). Step workers re-import this module and call `parallel_build_job()`, so
everything it needs comes from environment variables, not from the test's memory:

GITOPS_DATA_REPO, GITOPS_DATA_WAREHOUSE: the data repo and warehouse;
GITOPS_DATA_TEST_PINS: JSON {ref: sha} of the commits to define assets for;
GITOPS_DATA_TEST_MAX_CONCURRENT: the executor's max_concurrent (default 4).
Steps run in forkserver children (a separate process per step, like Dagster's default spawn,
but without re-importing Dagster for each).
"""

from __future__ import annotations

import json
import os

import dagster as dg

from gitops_data.deployment.core import Deployment
from gitops_data.orchestration.definitions import build_definitions

JOB_NAME = "parallel_build"


def parallel_build_job() -> dg.JobDefinition:
    ws = Deployment.from_env()
    base = build_definitions(ws, json.loads(os.environ["GITOPS_DATA_TEST_PINS"]))
    executor = dg.multiprocess_executor.configured(
        {
            "max_concurrent": int(os.environ.get("GITOPS_DATA_TEST_MAX_CONCURRENT", "4")),
            # step workers fork from a server that already imported Dagster and this project
            "start_method": {"forkserver": {"preload_modules": ["dagster", __name__]}},
        }
    )
    job = dg.define_asset_job(JOB_NAME, selection=dg.AssetSelection.all(), executor_def=executor)
    defs = dg.Definitions(
        assets=base.assets, asset_checks=base.asset_checks, resources=base.resources, jobs=[job]
    )
    return defs.resolve_job_def(JOB_NAME)
