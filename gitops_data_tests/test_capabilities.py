"""The engine registry (one place maps a location to its engine) and declared capabilities: each
engine states what it has, and the core's paths for engines that lack something run for real on
DuckDB and PostgreSQL connections declared to lack it."""

from __future__ import annotations

import dataclasses

import pytest

from gitops_data.capabilities import DECLARED, DUCKDB, POSTGRES, TurnTaking, for_dialect
from gitops_data.engines import engine_kind, is_url, open_warehouse
from gitops_data.errors import UnknownEngine
from gitops_data.naming import qualified


@pytest.mark.parametrize(
    ("location", "engine", "local"),
    [
        ("/tmp/wh/warehouse.duckdb", "duckdb", True),
        ("relative/wh.duckdb", "duckdb", True),
        ("postgresql://u@h:5432/db", "postgres", False),
        ("postgres://u@h/db", "postgres", False),
        ("POSTGRESQL+psycopg2://u@h/db", "postgres", False),
    ],
)
def test_the_registry_names_the_engine_of_a_location_by_its_scheme(location, engine, local):
    kind = engine_kind(location)
    assert kind.name == engine and kind.local_file is local and is_url(location) is not local


def test_a_scheme_no_engine_has_is_refused_naming_the_known_ones():
    with pytest.raises(UnknownEngine) as exc:
        engine_kind("mysql://root:secret@h/db")
    assert "mysql://" in str(exc.value) and "postgresql://" in str(exc.value)
    assert "secret" not in str(exc.value)


def test_every_engine_declares_capabilities_the_registry_and_its_class_agree_on(any_warehouse):
    kind = engine_kind(any_warehouse)
    with open_warehouse(any_warehouse) as engine:
        assert engine.capabilities is kind.capabilities is DECLARED[kind.name]
        assert engine.dialect == kind.capabilities.dialect
        assert for_dialect(engine.dialect) is kind.capabilities
    assert DUCKDB.turns == TurnTaking.FILE_LOCK and POSTGRES.advisory_locks
    assert POSTGRES.max_identifier == 63 and DUCKDB.max_identifier is None


def test_without_ctas_row_counts_or_transactions_a_build_statement_still_counts_and_stands_alone(
    any_warehouse,
):
    with open_warehouse(any_warehouse) as engine:
        caps = dataclasses.replace(engine.capabilities, ctas_row_count=False, transactional_ddl=False)
        engine.capabilities = caps
        engine.create_schema("s")
        assert engine.create_table_as("s", "t", "select 1 as x union all select 2") == 2
        with pytest.raises(RuntimeError), engine.transaction():
            engine.create_table_as("s", "u", "select 1 as x")
            raise RuntimeError("crash after the table")
        # no transaction to roll back: the table stays (an orphan for gc), as the engine promises
        assert set(engine.objects("s")) == {"t", "u"}
        assert engine.count(qualified("s", "u")) == 1
