"""Dagster's event log as the repo's dagster.yaml sets it up (orchestration/event_log.py): a sync's
events are all there for the UI, each run file starts as a copy of the template, and a home without
the template (or a wiped one) still works."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from gitops_data.orchestration.assets import asset_key
from gitops_data.orchestration.event_log import SqliteEventLogStorage
from gitops_data.workspace import Workspace
from gitops_data_tests.conftest import SMALL_PROJECT, sync


@pytest.fixture
def home(repo_dagster_home) -> Path:
    return repo_dagster_home


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as con:
        return {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}


def test_a_syncs_events_are_all_in_the_event_log_of_the_repos_dagster_yaml(home, make_repo, warehouse):
    repo = make_repo(SMALL_PROJECT)
    ws = Workspace(str(repo.path), warehouse)
    with dg.DagsterInstance.from_config(str(home)) as inst:
        assert isinstance(inst.event_log_storage, SqliteEventLogStorage)
        result = sync(ws, "main", inst)
        runs = home / "history" / "runs"
        templates = list((runs / ".template").iterdir())
        assert [t.name for t in templates] == [f"run-{dg.__version__}.sqlite"]
        run_file = runs / f"{result.run_id}.db"
        assert _tables(run_file) == _tables(templates[0])
        with sqlite3.connect(run_file) as con:  # stamped at Alembic's head, as Dagster's own would be
            assert con.execute("select count(*) from alembic_version").fetchone()[0] == 1
            assert con.execute("pragma journal_mode").fetchone()[0] == "wal"

    # another process (the webserver) reads what the run wrote
    with dg.DagsterInstance.from_config(str(home)) as reader:
        events = reader.all_logs(result.run_id)
        kinds = [e.dagster_event_type for e in events if e.is_dagster_event]
        materialized = {
            e.dagster_event.event_specific_data.materialization.asset_key.path[-1]
            for e in events
            if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        }
        assert materialized == {"nums", "a", "b", "c"}
        checks = sum(len(step.checks) for step in result.plan.models.values())
        assert checks >= 3 and kinds.count(dg.DagsterEventType.ASSET_CHECK_EVALUATION) == checks
        assert kinds[-1] == dg.DagsterEventType.RUN_SUCCESS
        # the asset index (the UI's asset pages) has them too
        assert reader.get_latest_materialization_event(asset_key(result.env, "c")) is not None


def test_a_run_file_is_made_the_dagster_way_without_the_template(home, make_repo, warehouse):
    repo = make_repo(SMALL_PROJECT)
    ws = Workspace(str(repo.path), warehouse)
    with dg.DagsterInstance.from_config(str(home)) as inst:
        inst.wipe()  # Dagster's wipe leaves the template alone
        template_dir = home / "history" / "runs" / ".template"
        assert any(template_dir.iterdir())
        shutil.rmtree(template_dir)  # someone removed it: the next run makes it again
        first = sync(ws, "main", inst)
        assert any(template_dir.iterdir())
        repo.replace("project.yml", "v * 2 as v2", "v * 3 as v2")
        repo.commit("b times 3")
        second = sync(ws, "main", inst)
        assert first.run_id != second.run_id
        for run_id in (first.run_id, second.run_id):
            assert inst.all_logs(run_id)[-1].dagster_event_type == dg.DagsterEventType.RUN_SUCCESS


def test_the_template_is_never_listed_as_a_run(home):
    with dg.DagsterInstance.from_config(str(home)) as inst:
        storage = inst.event_log_storage
        assert storage.get_all_run_ids() == []
        assert os.path.exists(storage._template)
