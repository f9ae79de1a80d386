"""Column checks that the engine can show to pass in one query (not_null, unique, isin, notin) give the
result pandera gives, on the edge cases where SQL and Polars differ: NaN, duplicated nulls, nulls in a
value check, values of another type than the column's, lists."""

from __future__ import annotations

import duckdb
import pytest

from gitops_data.audit import runner
from gitops_data.audit.runner import run_check
from gitops_data.engines.duckdb import DuckDBEngine
from gitops_data.project.checks import DeclaredCheck

ROWS = """
select * from (values
  (1, 1.0, 'a', 'a', 1, 1, [1]),
  (2, 2.0, 'b', 'b', 2, 2, [2]),
  (3, 'nan'::double, 'c', null, null, 3, [3]),
  (4, 4.0, 'a', null, null, 3, [4])
) t(id, f, s, s_null, i_null, i_dup, l)
"""

CASES = [  # (kind, column, args): each passes or fails as pandera says
    ("not_null", "id", True),
    ("not_null", "f", True),  # NaN is null for pandera
    ("not_null", "s_null", True),
    ("unique", "id", True),
    ("unique", "s", True),
    ("unique", "s_null", True),  # two nulls are duplicates for pandera
    ("unique", "i_dup", True),
    ("unique", "f", True),
    ("unique", "l", True),  # a list: pandera decides
    ("not_null", "l", True),
    ("isin", "s", ["a", "b", "c"]),
    ("isin", "s", ["a", "b"]),
    ("isin", "s_null", ["a", "b"]),  # nulls pass a value check
    ("isin", "i_null", [1, 2]),
    ("isin", "id", [1, 2, 3]),
    ("isin", "id", ["1", "2", "3", "4"]),  # strings on an integer column: pandera decides
    ("isin", "s", [1, 2]),
    ("notin", "s", ["x"]),
    ("notin", "s", ["c"]),
    ("notin", "i_null", [3]),
]


@pytest.fixture
def engine(tmp_path):
    eng = DuckDBEngine(duckdb.connect(str(tmp_path / "w.duckdb")))
    eng.execute(f"create table t as {ROWS}")
    yield eng
    eng.close()


def _check(kind, column, args) -> DeclaredCheck:
    return DeclaredCheck(f"{column}__{kind}", kind, column, args, "error", f"{column}: {kind} {args}")


@pytest.mark.parametrize(("kind", "column", "args"), CASES, ids=[f"{k}-{c}-{a}" for k, c, a in CASES])
def test_check_has_pandera_result(engine, monkeypatch, kind, column, args):
    chk, columns = _check(kind, column, args), engine.columns("main", "t")
    ours = run_check(engine, "main", "t", chk, columns, {})
    monkeypatch.setattr(runner, "_passes_in_engine", lambda *a: False)
    assert ours == run_check(engine, "main", "t", chk, columns, {})


def test_passing_checks_do_not_read_the_column_into_polars(engine, monkeypatch):
    columns = engine.columns("main", "t")
    read: list[str] = []
    frame = engine.frame
    monkeypatch.setattr(engine, "frame", lambda sql: read.append(sql) or frame(sql))
    passing = [("not_null", "id", True), ("unique", "id", True), ("isin", "s", ["a", "b", "c"])]
    results = [run_check(engine, "main", "t", _check(*c), columns, {}) for c in passing]
    assert [r.passed for r in results] == [True, True, True]
    assert read == []
    failing = run_check(engine, "main", "t", _check("unique", "s", True), columns, {})
    assert (failing.passed, failing.failed_rows, failing.sample) == (False, 2, ["a", "a"])
    assert len(read) == 1
