"""One project, three engines, the same data: the example project (seeds, file sources, SQL and
Python models, an incremental model, a snapshot, every kind of check) published on DuckDB, on
PostgreSQL and on Spark serves equal rows in every model, before and after a change."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from gitops_data.deployment.core import Deployment
from gitops_data_tests.conftest import column_types, objects, query, sync


def _normal(value):
    if isinstance(value, float | Decimal):
        return round(float(value), 6)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    return value


def _served(ws: Deployment, drop: tuple[str, ...] = ("valid_from", "valid_to")) -> dict[str, list[tuple]]:
    """model -> its rows (sorted, normalized); columns that hold the build's wall-clock time dropped."""
    out = {}
    for view in sorted(objects(ws, "analytics")):
        names = list(column_types(ws, "analytics", view))
        keep = ", ".join(f'"{c}"' for c in names if c not in drop)
        rows = [tuple(_normal(v) for v in r) for r in query(ws, f"select {keep} from analytics.{view}")]
        out[view] = sorted(rows, key=repr)
    return out


def _example_on(make_repo, instance, duckdb_path: str, other: str) -> None:
    """Sync the example on DuckDB and on `other`, change it, sync again: the same rows each time."""
    repo = make_repo(example=True)
    on_duckdb = Deployment(str(repo.path), duckdb_path)
    on_other = Deployment(str(repo.path), other)
    for ws in (on_duckdb, on_other):
        sync(ws, "main", instance)
    first = _served(on_duckdb)
    assert len(first) == 16 and all(first.values())
    assert _served(on_other) == first

    # a changed customer (a new snapshot version), a new order (an incremental append), a new model rule
    customers = repo.read("data/customers.csv").splitlines()
    moved = next(i for i, line in enumerate(customers) if line.startswith("5,"))
    fields = customers[moved].split(",")
    fields[3] = "moved@example.com"
    customers[moved] = ",".join(fields)
    repo.write("data/customers.csv", "\n".join(customers) + "\n")
    repo.write("data/orders.csv", repo.read("data/orders.csv") + "301,5,2026-12-01T10:00:00,pending,99.50\n")
    repo.replace("models/customer_value.py", "value >= 1500", "value >= 1000")
    repo.commit("more data, a lower VIP threshold")
    for ws in (on_duckdb, on_other):
        sync(ws, "main", instance)
    second = _served(on_duckdb)
    assert second != first
    assert _served(on_other) == second


def test_the_example_serves_the_same_data_on_duckdb_and_postgresql(
    make_repo, tmp_path, postgres_db, instance
):
    _example_on(make_repo, instance, str(tmp_path / "wh" / "warehouse.duckdb"), postgres_db)


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.xdist_group("spark")
def test_the_example_serves_the_same_data_on_duckdb_and_spark(make_repo, tmp_path, spark_warehouse, instance):
    _example_on(make_repo, instance, str(tmp_path / "wh" / "warehouse.duckdb"), spark_warehouse)
