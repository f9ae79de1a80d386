"""The DuckDB engine and consumers: the file lock held by readers, read-only connections, ATTACH."""

from __future__ import annotations

import duckdb
import pytest

from gitops_data.deployment.core import Deployment
from gitops_data.engines import open_warehouse
from gitops_data.errors import WarehouseBusy
from gitops_data_tests.conftest import SMALL_PROJECT, sync


def test_views_resolve_when_the_file_is_attached_under_another_name(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    con = duckdb.connect()
    con.execute(f"attach '{warehouse}' as wh (read_only)")
    assert con.execute("select v2 from wh.analytics.b order by id").fetchall() == [(20,), (40,), (60,)]
    con.close()
    ro = duckdb.connect(warehouse, read_only=True)
    assert ro.execute("select n from analytics.c").fetchall() == [(3,)]
    ro.close()


def test_a_reader_holding_the_file_makes_writers_wait_then_report_busy(
    make_repo, warehouse, instance, monkeypatch
):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    monkeypatch.setenv("GITOPS_DATA_LOCK_TIMEOUT", "1")
    # DuckDB's own file lock is per process: hold it from another process, like a consumer would
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_read_only, args=(warehouse, ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(WarehouseBusy, match="read-only connections"):
            with open_warehouse(warehouse):
                pass
    finally:
        release.set()
        proc.join(30)
    with open_warehouse(warehouse) as con:  # once the reader is gone, writers proceed
        assert con.execute("select count(*) from analytics.b").fetchall() == [(3,)]


def _hold_read_only(path: str, ready, release) -> None:
    con = duckdb.connect(path, read_only=True)
    ready.set()
    release.wait(60)
    con.close()
