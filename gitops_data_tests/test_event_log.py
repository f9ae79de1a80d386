"""Dagster's event log as the repo's dagster.yaml sets it up (orchestration/event_log.py): a sync's
events are all there for the UI, each run file starts as a copy of the template (the same file as
Dagster would make), and a home without the template, a wiped one or one without hard links works."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from gitops_data.deployment.core import Deployment
from gitops_data.orchestration.assets import asset_key
from gitops_data.orchestration.event_log import SqliteEventLogStorage
from gitops_data_tests.conftest import SMALL_PROJECT, sync


@pytest.fixture
def home(repo_dagster_home) -> Path:
    return repo_dagster_home


def _shape(path: Path) -> tuple:
    """Schema, Alembic revision, journal mode and permissions of an event log file."""
    with sqlite3.connect(path) as con:
        schema = con.execute("select type, name, sql from sqlite_master order by type, name").fetchall()
        revision = con.execute("select version_num from alembic_version").fetchall()
        journal = con.execute("pragma journal_mode").fetchone()[0]
    return schema, revision, journal, oct(path.stat().st_mode & 0o777)


def _dagsters_own_run_file(tmp_path: Path) -> Path:
    """A run file made the way Dagster's own storage makes it."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
        SqliteEventLogStorage as DagstersOwn,
    )

    storage = DagstersOwn(str(tmp_path / "dagsters_own"))
    with storage.run_connection("a_run"):
        pass
    storage.dispose()
    return tmp_path / "dagsters_own" / "a_run.db"


def test_a_syncs_events_are_all_in_the_event_log_of_the_repos_dagster_yaml(
    home, make_repo, warehouse, tmp_path
):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    with dg.DagsterInstance.from_config(str(home)) as inst:
        assert isinstance(inst.event_log_storage, SqliteEventLogStorage)
        result = sync(ws, "main", inst)
        runs = home / "history" / "runs"
        templates = list((runs / ".template").iterdir())
        assert [t.name for t in templates] == [f"run-{dg.__version__}.sqlite"]
        run_file = runs / f"{result.run_id}.db"
        assert _shape(run_file) == _shape(_dagsters_own_run_file(tmp_path))
        with inst.event_log_storage._engine(result.run_id).connect() as con:
            assert con.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL

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


def test_a_wipe_keeps_the_template_and_a_removed_one_is_made_again(home, make_repo, warehouse):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
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


def test_without_hard_links_a_run_file_is_made_the_dagster_way(home, make_repo, warehouse, monkeypatch):
    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")  # a file system without hard links

    monkeypatch.setattr(os, "link", no_links)
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    with dg.DagsterInstance.from_config(str(home)) as inst:
        result = sync(ws, "main", inst)
        assert inst.all_logs(result.run_id)[-1].dagster_event_type == dg.DagsterEventType.RUN_SUCCESS
    runs = home / "history" / "runs"
    assert not list(runs.glob("*.tmp")), "no copy left behind"


def test_the_template_is_never_listed_as_a_run(home):
    with dg.DagsterInstance.from_config(str(home)) as inst:
        storage = inst.event_log_storage
        assert storage.get_all_run_ids() == []
        assert os.path.exists(storage._template)
