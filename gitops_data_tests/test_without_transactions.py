"""The core's paths for engines that lack transactions, RETURNING and advisory locks (Spark's case),
run for real on DuckDB and PostgreSQL connections declared to lack them: the catalog's plan moves,
builds whose catalog row comes after their table (a crash between leaves an orphan gc drops), the
per-view publish (a crash part way leaves the old commit recorded; publishing again finishes), and
turn-taking by a lease row with a heartbeat and an expiry."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from gitops_data.capabilities import PublishStrategy
from gitops_data.deployment.core import Deployment
from gitops_data.engines import open_warehouse
from gitops_data.engines.backoff import Retry
from gitops_data.engines.duckdb import DuckDBEngine
from gitops_data.engines.lease_row import LEASE_TABLE, LeaseRow, lease_turn
from gitops_data.engines.postgres import PostgresEngine
from gitops_data.errors import BuildError, LeaseLost, WarehouseBusy
from gitops_data.warehouse.catalog import Catalog
from gitops_data.warehouse.inspect import collect_garbage
from gitops_data_tests import test_catalog
from gitops_data_tests.conftest import SMALL_PROJECT, query, sync


@pytest.fixture
def lacking(any_warehouse, monkeypatch) -> str:
    """A warehouse whose engine is declared without transactions, RETURNING or CTAS row counts, and
    publishing view by view."""
    for cls in (DuckDBEngine, PostgresEngine):
        monkeypatch.setattr(
            cls,
            "capabilities",
            dataclasses.replace(
                cls.capabilities,
                transactional_ddl=False,
                returning=False,
                ctas_row_count=False,
                publish=PublishStrategy.PER_VIEW,
            ),
        )
    return any_warehouse


def test_the_catalog_round_trips_without_transactions_or_returning(lacking):
    with open_warehouse(lacking) as engine:
        assert not engine.capabilities.returning and not engine.capabilities.transactional_ddl
    test_catalog.test_builds_audits_plans_and_statuses_round_trip(lacking)


def _served(ws: Deployment) -> dict[str, list[tuple]]:
    return {v: sorted(query(ws, f"select * from analytics.{v}")) for v in ("a", "b", "c")}


def test_a_per_view_publish_killed_part_way_keeps_the_old_commit_recorded_and_a_rerun_finishes(
    lacking, make_repo, instance, monkeypatch
):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), lacking)
    first = sync(ws, "main", instance)
    assert _served(ws) == {"a": [(1, 10), (2, 20), (3, 30)], "b": [(1, 20), (2, 40), (3, 60)], "c": [(3,)]}

    repo.write("seeds/nums.csv", "id,v\n1,10\n2,20\n3,30\n4,40\n")
    repo.commit("a fourth row")
    cls = type(_engine_of(lacking))
    real = cls.replace_view
    flips: list[str] = []

    def dies_at_the_second_flip(self, schema, name, select, existing):
        if len(flips) == 1:
            raise ConnectionError("killed between two views")
        flips.append(name)
        return real(self, schema, name, select, existing)

    monkeypatch.setattr(cls, "replace_view", dies_at_the_second_flip)
    with pytest.raises(Exception, match="killed between two views"):
        sync(ws, "main", instance)
    with ws.catalog() as cat:
        assert cat.environments()["main"].commit == first.commit  # the record is the old commit's
    # the mixed window: the first view serves the new commit, the others still the old one
    assert len(query(ws, f"select * from analytics.{flips[0]}")) == 4
    assert query(ws, "select n from analytics.c") == [(3,)]

    monkeypatch.setattr(cls, "replace_view", real)
    second = sync(ws, "main", instance)
    assert second.commit == repo.head() != first.commit
    assert _served(ws)["c"] == [(4,)] and len(_served(ws)["a"]) == 4
    with ws.catalog() as cat:
        assert cat.environments()["main"].commit == repo.head()


def _engine_of(location: str):
    with open_warehouse(location) as engine:
        return engine


def test_a_build_killed_before_its_catalog_row_leaves_an_orphan_that_gc_drops(
    lacking, make_repo, instance, monkeypatch
):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), lacking)
    real = Catalog.record_build

    def dies_before_the_row(self, rec, kind, env, columns, reads=()):
        if rec.model == "b":
            raise ConnectionError("killed after the table, before its row")
        return real(self, rec, kind, env, columns, reads)

    monkeypatch.setattr(Catalog, "record_build", dies_before_the_row)
    with pytest.raises(BuildError):
        sync(ws, "main", instance)
    monkeypatch.setattr(Catalog, "record_build", real)
    with ws.catalog() as cat:
        built = {b.model for b in cat.builds()}
        assert "b" not in built  # never a record without a table
        report = collect_garbage(cat, ws.production_settings())
    assert [t.split("__")[0] for t in report.dropped_orphans] == ["b"] and report.orphans == []
    with ws.catalog() as cat:
        assert not [t for t in cat.engine.objects("gitops_internal") if t.startswith("b__")]
    sync(ws, "main", instance)
    assert _served(ws)["c"] == [(3,)]


# -- the lease row ------------------------------------------------------------------------------


def _fresh(location: str):
    """A connection that takes no turn of its own (the lease is the only turn-taking)."""
    if location.startswith("sc://"):  # else it would open a DuckDB file named like the URL
        pytest.skip("Spark takes turns on its catalog store's lock, not a lease row (parquet has no DELETE)")
    if location.startswith("postgresql://"):
        from gitops_data.engines.postgres import _connect

        return PostgresEngine(_connect(location, 10), location)
    import duckdb

    Path(location).parent.mkdir(parents=True, exist_ok=True)
    return DuckDBEngine(duckdb.connect(location))


def test_a_lease_row_is_taken_by_one_process_knocked_on_and_handed_over(any_warehouse):
    first = _fresh(any_warehouse)
    second = first.sibling()
    try:
        a, b = LeaseRow(first, expiry=30), LeaseRow(second, expiry=30)
        a.ensure_table()
        a.try_take()
        assert not a.turn_wanted()
        with pytest.raises(Retry):
            b.try_take()
        assert a.turn_wanted()  # b knocked
        a.heartbeat()
        a.release()
        b.try_take()
        assert [r[0] for r in first.fetchall(f"select kind from {LEASE_TABLE}")] == ["hold"]
        b.release()
    finally:
        second.close()
        first.close()


def test_an_expired_lease_is_taken_over_and_its_old_holder_learns_it_lost_it(any_warehouse):
    first = _fresh(any_warehouse)
    second = first.sibling()
    try:
        a, b = LeaseRow(first, expiry=0.2), LeaseRow(second, expiry=30)
        a.ensure_table()
        a.try_take()
        time.sleep(0.3)  # a's process stopped beating
        b.try_take()
        with pytest.raises(LeaseLost, match="lost the warehouse's lease"):
            a.heartbeat()
        b.release()
    finally:
        second.close()
        first.close()


def test_the_heartbeat_keeps_a_long_hold_alive_and_waiters_give_up_busy(postgres_db):
    holder = _fresh(postgres_db)
    waiter = _fresh(postgres_db)
    try:
        with lease_turn(holder, lambda: _fresh(postgres_db), timeout=5, expiry=0.3) as lease:
            time.sleep(1.0)  # over three expiries: only the heartbeat keeps it
            with pytest.raises(WarehouseBusy, match="lease stayed taken"):
                with lease_turn(waiter, lambda: _fresh(postgres_db), timeout=0.5, expiry=0.3):
                    pass
            lease.heartbeat()
        with lease_turn(waiter, lambda: _fresh(postgres_db), timeout=5, expiry=0.3):
            pass
    finally:
        waiter.close()
        holder.close()


def test_processes_contending_for_a_lease_row_hold_it_one_at_a_time(postgres_db):
    inside, most, turns = [0], [0], [0]
    guard = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        engine = _fresh(postgres_db)
        try:
            for _ in range(5):
                with lease_turn(engine, lambda: _fresh(postgres_db), timeout=60, expiry=5):
                    with guard:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                    time.sleep(0.005)
                    with guard:
                        inside[0] -= 1
                        turns[0] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.close()

    setup = _fresh(postgres_db)
    LeaseRow(setup).ensure_table()
    setup.close()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and turns[0] == 20 and most[0] == 1
