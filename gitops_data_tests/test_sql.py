"""sql.parse_query / rewrite / canonical: references, refused SQL, rewriting to physical tables."""

from __future__ import annotations

import duckdb
import pytest

from gitops_data.errors import SqlError
from gitops_data.sql import parse_query, rewrite

# --- parse_query: references -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "refs"),
    [
        ("select * from nums", {"nums"}),
        ("select * from NUMS", {"nums"}),
        ('select * from "Nums"', {"nums"}),
        ("select a.x, b.y from a join B on a.id = B.id", {"a", "b"}),
        ("select * from a where id in (select id from c)", {"a", "c"}),
        ("select * from (select * from inner_t) sub", {"inner_t"}),
        ("select 1 as x from a union all select 2 from b", {"a", "b"}),
        ("with x as (select * from nums) select * from x", {"nums"}),
        ("with X as (select * from nums) select * from x join y using (id)", {"nums", "y"}),
        ("with x as (select 1) select * from X", set()),
        ("with x as (select * from a), z as (select * from x) select * from z", {"a"}),
        ("from nums", {"nums"}),
        ("select 1", set()),
        ("values (1), (2)", set()),
        ("select * from generate_series(1, 3)", set()),
        ("select * from range(3)", set()),
        ("select * from unnest([1, 2])", set()),
        ("select * from a, a as a2", {"a"}),
    ],
)
def test_references(sql, refs):
    assert parse_query(sql).references == frozenset(refs)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("", "SQL is empty"),
        ("   \n ", "SQL is empty"),
        ("select (1", "cannot parse SQL (SQL line 1, column 9): Expecting )"),
        ("selct 1", "a query starts with SELECT, WITH, FROM or VALUES, not 'selct'"),
        ("select a from t where", "WHERE needs a condition"),
        ("select 1; select 2", "found 2 statements"),
        ("drop table x", "found DROP"),
        ("create table x as select 1", "found CREATE"),
        ("insert into x select 1", "found INSERT"),
        ("attach 'other.db'", "found ATTACH"),
        ("select * from read_csv('/etc/passwd')", "table function"),
        ("select * from read_parquet('x.parquet')", "table function"),
        ("select * from glob('*')", "table function"),
        ("select * from sqlite_scan('x.db', 't')", "table function"),
        ("select * from a join read_csv_auto('x.csv') using (id)", "table function"),
        ("select * from other.db.t", "qualified name 'other.db.t'"),
        ("select * from main.t", "qualified name 'main.t'"),
        ("with x as (select * from s.t) select * from x", "qualified name 's.t'"),
        ("select getenv('HOME')", "function getenv() is not allowed"),
        ("select (select count(*) from read_text('/etc/passwd'))", "not allowed"),
    ],
)
def test_refused_sql(sql, message):
    with pytest.raises(SqlError) as info:
        parse_query(sql)
    assert message in str(info.value)


def test_count_of_two_distinct_columns_is_refused_as_duckdb_refuses_it():
    con = duckdb.connect()
    con.execute("create table t as select * from (values (1, 1), (1, 2), (2, null)) v(a, b)")
    sql = "select\n  a,\n  count(distinct a, b) over () as n\nfrom t"
    with pytest.raises(duckdb.BinderException):
        con.execute(sql)
    with pytest.raises(SqlError) as info:
        parse_query(sql)
    assert info.value.sql_line == 3
    assert "count(DISTINCT (a, b))" in str(info.value)
    # one distinct argument, or a tuple, runs as written; a dialect that has the form is transpiled
    for ok in ("select count(distinct (a, b)) from t", "select string_agg(distinct a::text, ',') from t"):
        assert con.execute(rewrite(parse_query(ok), {})).fetchall() == con.execute(ok).fetchall()
    assert parse_query("select count(distinct a, b) from t", "snowflake").references == {"t"}


def test_cte_shadowing_a_model_keeps_the_reference():
    sql = "with a as (select * from a where v > 10) select * from a"
    parsed = parse_query(sql)
    assert parsed.references == frozenset({"a"})
    con = duckdb.connect()
    con.execute('create schema s; create table s."a__1" as select * from (values (1, 5), (2, 20)) t(id, v)')
    assert con.execute(rewrite(parsed, {"a": '"s"."a__1"'})).fetchall() == [(2, 20)]


# --- rewrite in real DuckDB --------------------------------------------------------------------------


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("create schema internal")
    c.execute(
        'create table internal."nums__aaa__1" as select * from (values (1, 10), (2, 20), (3, 30)) t(id, v)'
    )
    c.execute(
        'create table internal."labels__bbb__1" as '
        "select * from (values (1, 'one'), (3, 'three')) t(id, label)"
    )
    yield c
    c.close()


TABLES = {"nums": '"internal"."nums__aaa__1"', "labels": '"internal"."labels__bbb__1"'}


@pytest.mark.parametrize(
    ("sql", "rows"),
    [
        ("select id, v from nums order by id", [(1, 10), (2, 20), (3, 30)]),
        ("select nums.id from nums order by nums.id", [(1,), (2,), (3,)]),
        ("select n.id, l.label from nums n join labels l using (id) order by 1", [(1, "one"), (3, "three")]),
        ("select NUMS.v from NUMS where NUMS.id = 2", [(20,)]),
        ('select "Nums".v from "Nums" where id = 3', [(30,)]),
        ("with labels2 as (select * from labels) select count(*) from labels2", [(2,)]),
        ("with x as (select id from nums where v > 15) select sum(id) from x", [(5,)]),
        ("select count(*) from nums where id in (select id from labels)", [(2,)]),
        ("select id from nums except select id from labels", [(2,)]),
        ("select n1.id, n2.id from nums n1 join nums n2 on n2.id = n1.id + 1 order by 1", [(1, 2), (2, 3)]),
        # what a reference carries besides its name stays with it
        ("select * from nums pivot (sum(v) for id in (1, 3))", [(10, 30)]),
        ("select p.* from nums pivot (sum(v) for id in (1, 3)) as p", [(10, 30)]),
        ("select k, x from nums unpivot (x for k in (v)) where id = 2", [("v", 20)]),
        ("select count(*) from nums tablesample 100%", [(3,)]),
    ],
)
def test_rewrite_runs_against_renamed_tables(con, sql, rows):
    parsed = parse_query(sql)
    out = rewrite(parsed, TABLES)
    assert '"internal".' in out
    # the plain names do not exist in DuckDB: only the rewritten query can run
    with pytest.raises(duckdb.CatalogException):
        con.execute(sql)
    assert con.execute(out).fetchall() == rows


@pytest.mark.parametrize(
    "sql",
    ["select * from nums pivot (sum(v) for id in (1, 3))", "select k, x from nums unpivot (x for k in (v))"],
)
def test_an_inlined_model_keeps_what_its_reference_carries(con, sql):
    inlined = rewrite(parse_query(sql), {"nums": '(select * from "internal"."nums__aaa__1")'})
    assert con.execute(inlined).fetchall() == con.execute(rewrite(parse_query(sql), TABLES)).fetchall()
    assert "PIVOT" in inlined


def test_rewrite_leaves_ctes_and_unknown_names_alone():
    parsed = parse_query("with nums as (select 1 as id) select * from nums join other using (id)")
    out = rewrite(parsed, TABLES)
    assert "internal" not in out
    assert "FROM nums JOIN other" in out


def test_rewrite_does_not_change_the_parsed_tree():
    parsed = parse_query("select * from nums")
    before = parsed.canonical
    rewrite(parsed, TABLES)
    assert parsed.canonical == before == "SELECT * FROM nums"


# --- canonical SQL -------------------------------------------------------------------------------------


def test_canonical_ignores_whitespace_comments_and_keyword_case():
    a = parse_query("select id, v from nums where v > 1")
    b = parse_query(
        "-- a comment\nSELECT\n    id,   /* inline */\n    v\nFROM nums\n\n  WHERE v > 1  -- trailing\n"
    )
    assert a.canonical == b.canonical == "SELECT id, v FROM nums WHERE v > 1"


def test_canonical_differs_for_different_queries():
    assert (
        parse_query("select id from nums where v > 1").canonical
        != parse_query("select id from nums where v > 2").canonical
    )
    assert parse_query("select 'a  b' as s").canonical != parse_query("select 'a b' as s").canonical


# -- transpiling for Spark: what sqlglot writes but Spark rejects or runs with other results ------
SPARK_REFUSED = [
    ("select len([1, 2]) as n", "len() of a list"),
    ("select * replace (v + 1 as v) from t", "SELECT * REPLACE"),
    ("select columns(*) from t", "COLUMNS(...)"),
    ("select v from t union all by name select v from u", "UNION BY NAME"),
    ("select v from t qualify row_number() over (order by v) = 1 limit 5", "QUALIFY with LIMIT"),
    ("select list(v order by v) as l from t", "list() / array_agg() with ORDER BY"),
    ("select 3.7::int as i", "DuckDB rounds, Spark truncates"),
    ("select cast(v / 2 as bigint) as i from t", "DuckDB rounds, Spark truncates"),
    ("select try_cast(avg(v) as smallint) as i from t", "DuckDB rounds, Spark truncates"),
]
SPARK_FINE = [
    "select v from t qualify row_number() over (order by v) = 1",
    "select list(v) as l, len('abc') as n, array_length([1]) as m from t",
    "select cast(round(v / 2) as bigint) as i, 3::int as j, '3'::int as k, v::int as c from t",
    "select * exclude (v) from t",
]


@pytest.mark.parametrize(("sql", "construct"), SPARK_REFUSED)
def test_a_construct_spark_rejects_or_changes_is_named_for_a_spark_target(sql, construct):
    from gitops_data.sql import parse_query, target_problems

    problems = target_problems(parse_query(sql), "spark")
    assert len(problems) == 1 and construct in problems[0], problems
    assert target_problems(parse_query(sql), "duckdb") == []


@pytest.mark.parametrize("sql", SPARK_FINE)
def test_what_spark_runs_with_duckdbs_results_passes_for_a_spark_target(sql):
    from gitops_data.sql import parse_query, target_problems

    assert target_problems(parse_query(sql), "spark") == []


def test_a_spark_target_makes_a_changed_result_a_validate_error_at_file_and_line(tmp_path):
    from gitops_data.errors import ProjectError
    from gitops_data.project.loader import load_project
    from gitops_data.project.tree import DirTree

    (tmp_path / "gitops_data.yaml").write_text("name: t\n")
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "nums.csv").write_text("id,v\n1,1.5\n")
    (tmp_path / "project.yml").write_text(
        "seeds:\n  - name: nums\n    path: seeds/nums.csv\nmodels:\n  - name: a\n"
        "    sql: select id, v::int as v from nums\n"
        "  - name: b\n    sql: select cast(v / 2 as int) as h from a\n"
    )
    load_project(DirTree(str(tmp_path)), "duckdb")  # fine where it runs on DuckDB
    with pytest.raises(ProjectError) as exc:
        load_project(DirTree(str(tmp_path)), "spark")
    (issue,) = exc.value.issues
    assert (issue.file, issue.line, issue.model) == ("project.yml", 8, "b")
    assert "DuckDB rounds, Spark truncates" in issue.message
