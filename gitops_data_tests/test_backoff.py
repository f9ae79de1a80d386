"""Waiting for the warehouse says, every few seconds on stderr, who holds it and for how long:
another gitops-data process (its pid and command), a program holding the DuckDB file, or the
session holding PostgreSQL's advisory lock."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import threading

import duckdb
import pytest

from gitops_data.engines import open_warehouse
from gitops_data.engines.duckdb import warehouse_lock
from gitops_data.engines.holders import describe_duckdb_holder, describe_lock_record, lock_record
from gitops_data.engines.lease_row import lease_turn
from gitops_data.engines.postgres import open_postgres
from gitops_data.errors import WarehouseBusy


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setenv("GITOPS_DATA_WAIT_NOTICE", "0.3")
    monkeypatch.setenv("GITOPS_DATA_LOCK_TIMEOUT", "1.5")


def _hold(enter, released: threading.Event, ready: threading.Event) -> threading.Thread:
    def run() -> None:
        with enter():
            ready.set()
            released.wait(30)

    t = threading.Thread(target=run)
    t.start()
    assert ready.wait(30)
    return t


def _notices(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("waiting for ")]


def test_waiting_for_another_gitops_data_process_names_it(warehouse, quick, capsys):
    released, ready = threading.Event(), threading.Event()
    holder = _hold(lambda: warehouse_lock(warehouse), released, ready)
    try:
        with pytest.raises(WarehouseBusy):
            with open_warehouse(warehouse):
                pass
    finally:
        released.set()
        holder.join(30)
    lines = _notices(capsys.readouterr().err)
    assert len(lines) >= 2, lines  # every few seconds (here 0.3 s), not once
    assert re.fullmatch(
        rf"waiting for warehouse {re.escape(warehouse)}: pid {os.getpid()} \(.+\) for \d+s; "
        r"waited \d+s \(gives up after 2s\)",
        lines[0],
    ), lines[0]


def test_waiting_for_a_program_holding_the_duckdb_file_names_its_pid(warehouse, quick, capsys):
    os.makedirs(os.path.dirname(warehouse))
    duckdb.connect(warehouse).close()
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_read_only, args=(warehouse, ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(WarehouseBusy):
            with open_warehouse(warehouse):
                pass
    finally:
        release.set()
        proc.join(30)
    lines = _notices(capsys.readouterr().err)
    assert lines and all(f"pid {proc.pid} (python" in line for line in lines), lines
    assert "DuckDB's own file lock" in lines[0] and "running for" in lines[0]


def _hold_read_only(path: str, ready, release) -> None:
    con = duckdb.connect(path, read_only=True)
    ready.set()
    release.wait(60)
    con.close()


def test_waiting_for_the_postgres_advisory_lock_names_the_session(postgres_db, quick, capsys):
    released, ready = threading.Event(), threading.Event()
    holder = _hold(lambda: open_postgres(postgres_db), released, ready)
    try:
        with pytest.raises(WarehouseBusy):
            with open_warehouse(postgres_db):
                pass
    finally:
        released.set()
        holder.join(30)
    lines = _notices(capsys.readouterr().err)
    assert len(lines) >= 2, lines
    assert re.search(rf": gitops-data pid {os.getpid()}: .+ \(server pid \d+\) for \d+s; waited", lines[0]), (
        lines
    )


def test_holder_descriptions_of_what_cannot_be_known():
    assert describe_lock_record(b"") == "another process"
    assert describe_lock_record(b"999999999\t1.0\tgone\n") == "another process"  # no such process
    mine = describe_lock_record(lock_record())
    assert mine.startswith(f"pid {os.getpid()} (") and mine.endswith(" for 0s")
    assert describe_duckdb_holder("IO Error: Could not set lock on file") == "another process"


def test_waiting_for_a_lease_row_names_its_holder(postgres_db, monkeypatch, capsys):
    from gitops_data_tests.test_without_transactions import _fresh

    monkeypatch.setenv("GITOPS_DATA_WAIT_NOTICE", "0.2")
    holder, waiter = _fresh(postgres_db), _fresh(postgres_db)
    try:
        with lease_turn(holder, lambda: _fresh(postgres_db), timeout=5, expiry=5):
            with pytest.raises(WarehouseBusy):
                with lease_turn(waiter, lambda: _fresh(postgres_db), timeout=1, expiry=5):
                    pass
    finally:
        waiter.close()
        holder.close()
    lines = _notices(capsys.readouterr().err)
    assert lines and re.search(
        rf"waiting for the warehouse's lease: .+:{os.getpid()} \(.+\) for \d+s", lines[0]
    )
