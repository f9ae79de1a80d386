"""A seed or file source whose data cannot be loaded: one message (printed once) naming the repo
file and line, the column and value, the model's YAML file:line, and a remedy the YAML can say;
the remedy works (a declared type is the type the file is read as)."""

from __future__ import annotations

import sys

import pytest

from gitops_data.cli import entry
from gitops_data.warehouse.data_errors import explain_load_error, parse_conversion
from gitops_data_tests.conftest import query as q

ROWS = 30_000  # past DuckDB's type-sniffing sample (20,480 rows)
BAD_ROW = ROWS - 10


def _events() -> str:
    lines = ["id,amount"] + [f"{i},{'oops' if i == BAD_ROW else i}" for i in range(ROWS)]
    return "\n".join(lines) + "\n"


PROJECT = {
    "gitops_data.yaml": "name: t\n",
    "data/events.csv": _events(),
    "project.yml": """sources:
  - name: events
    path: data/events.csv
models:
  - name: total
    sql: select count(*) as n from events
""",
}


@pytest.fixture
def cli(tmp_path, make_repo, monkeypatch, capsys, any_warehouse):
    repo = make_repo(PROJECT)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    base = ["gitops-data", "--repo", str(repo.path), "--warehouse", any_warehouse]

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", [*base, *args])
        code = entry()
        out, err = capsys.readouterr()
        return code, out, err

    run.repo, run.warehouse = repo, any_warehouse
    return run


def test_a_bad_value_deep_in_a_csv_is_one_message_at_its_line_with_a_yaml_remedy(cli):
    code, out, err = cli("sync")
    assert code == 4
    both = out + err
    line = BAD_ROW + 2  # the header is line 1
    expected = f"data/events.csv:{line}: column 'amount': value 'oops' is not a bigint"
    assert both.count(expected) == 1, both  # printed once, not by the progress and the error both
    assert "source 'events' (project.yml:2)" in err
    assert "`amount: {type: varchar}`" in err and "under `columns:`" in err
    for noise in ("types={", "sample_size", "gitops_data_", "/tmp", "Possible solutions", "delimiter ="):
        assert noise not in both, both
    assert "✗ events: failed" in out

    # the remedy it names, written in the YAML, builds the source
    cli.repo.replace(
        "project.yml",
        "    path: data/events.csv\n",
        "    path: data/events.csv\n    columns:\n      amount: {type: varchar}\n",
    )
    cli.repo.commit("declare amount")
    code, out, err = cli("sync")
    assert code == 0, err
    assert q(cli.warehouse, "select count(*) from analytics.events where amount = 'oops'") == [(1,)]


def test_a_declared_type_a_value_does_not_have_says_so():
    text = (
        'Conversion Error: CSV Error on Line: 7\nOriginal Line: 5,x\nError when converting column "d". '
        "Could not convert string \"x\" to 'DATE'\n\nColumn d is being converted as type DATE\n"
        "This type was either manually set or derived from an existing table.\n\n  file = /tmp/s.csv\n"
    )
    conv = parse_conversion(text)
    assert conv is not None and (conv.line, conv.column, conv.value, conv.type) == (7, "d", "x", "DATE")
    assert conv.declared
    msg = explain_load_error(
        text,
        model="days",
        kind="seed",
        location="seeds.yml:4",
        data_file="seeds/days.csv",
        scratch="/tmp/s.csv",
    )
    assert msg.startswith("seeds/days.csv:7: column 'd': value 'x' is not a date (declared as date)")
    assert "seed 'days' (seeds.yml:4)" in msg and "/tmp" not in msg


def test_other_reader_errors_name_the_repo_file_not_the_scratch_copy():
    text = "Invalid Input Error: No magic bytes found at end of file '/tmp/gitops_data_x.parquet'"
    msg = explain_load_error(
        text,
        model="p",
        kind="source",
        location="project.yml:9",
        data_file="data/p.parquet",
        scratch="/tmp/gitops_data_x.parquet",
    )
    assert msg == (
        "loading data/p.parquet into source 'p' (project.yml:9) failed: Invalid Input Error: "
        "No magic bytes found at end of file 'data/p.parquet'"
    )
