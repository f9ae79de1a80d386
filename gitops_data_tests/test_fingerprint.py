"""sql.parse_query / rewrite / canonical, and fingerprints of loaded projects across commits."""

from __future__ import annotations

import duckdb
import pytest

from gitops_data.spec.checks import declared_checks
from gitops_data.errors import SqlError
from gitops_data.fingerprint import check_hash, node_fingerprint, project_fingerprints
from gitops_data.spec.loader import load_project
from gitops_data.spec.tree import GitTree
from gitops_data.sql import parse_query, rewrite
from gitops_data_tests.conftest import SMALL_PROJECT

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
        ("select (1", "cannot parse SQL (line 1"),
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
    c.execute('create table internal."nums__aaa__1" as select * from (values (1, 10), (2, 20), (3, 30)) t(id, v)')
    c.execute('create table internal."labels__bbb__1" as select * from (values (1, \'one\'), (3, \'three\')) t(id, label)')
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
    b = parse_query("-- a comment\nSELECT\n    id,   /* inline */\n    v\nFROM nums\n\n  WHERE v > 1  -- trailing\n")
    assert a.canonical == b.canonical == "SELECT id, v FROM nums WHERE v > 1"


def test_canonical_differs_for_different_queries():
    assert parse_query("select id from nums where v > 1").canonical != parse_query(
        "select id from nums where v > 2"
    ).canonical
    assert parse_query("select 'a  b' as s").canonical != parse_query("select 'a b' as s").canonical


# --- fingerprints across commits ------------------------------------------------------------------


def _fps(repo, sha=None):
    project = load_project(GitTree(str(repo.path), sha or repo.head()))
    return project, project_fingerprints(project)


def _check_hashes(project, name):
    return {c.name: c.hash for c in declared_checks(project.nodes[name])}


def _changed(fp1: dict, fp2: dict) -> set[str]:
    assert fp1.keys() == fp2.keys()
    return {n for n in fp1 if fp1[n] != fp2[n]}


A_SQL = "    sql: select id, v from nums\n"


@pytest.fixture
def small(make_repo):
    repo = make_repo(dict(SMALL_PROJECT))
    project, fps = _fps(repo)
    assert list(fps) == ["nums", "a", "b", "c"]
    assert all(len(fp) == 64 for fp in fps.values())
    assert len(set(fps.values())) == 4
    return repo, project, fps


def test_fingerprints_are_stable_for_the_same_commit(small):
    repo, _, fps = small
    assert _fps(repo)[1] == fps


def test_whitespace_and_comments_do_not_change_fingerprints(small):
    repo, _, fps = small
    first = repo.head()
    repo.replace("project.yml", A_SQL,
                 "    sql: |\n      -- the same query\n      SELECT id,\n             v   /* value */\n      FROM   nums\n")
    second = repo.commit("reformat a")
    assert second != first
    project2, fps2 = _fps(repo)
    assert "-- the same query" in project2.nodes["a"].sql
    assert fps2 == fps


def test_moving_sql_to_a_file_does_not_change_fingerprints(small):
    repo, _, fps = small
    repo.write("models/a.sql", "-- a, now in a file\nselect id,\n  v\nfrom nums\n")
    repo.replace("project.yml", A_SQL, "    sql_file: models/a.sql\n")
    repo.commit("sql_file")
    assert _fps(repo)[1] == fps


def test_upstream_change_changes_downstream_only(make_repo):
    files = dict(SMALL_PROJECT)
    files["other.yml"] = "models:\n  - name: d\n    sql: select count(*) as n from nums\n"
    repo = make_repo(files)
    _, fps = _fps(repo)
    repo.replace("project.yml", "    sql: select id, v * 2 as v2 from a\n", "    sql: select id, v * 3 as v2 from a\n")
    repo.commit("change b")
    _, fps2 = _fps(repo)
    assert _changed(fps, fps2) == {"b", "c"}
    repo.replace("project.yml", A_SQL, "    sql: select id, v + 1 as v from nums\n")
    repo.commit("change a")
    _, fps3 = _fps(repo)
    assert _changed(fps2, fps3) == {"a", "b", "c"}


def test_metadata_changes_keep_fingerprints_but_checks_change_check_hashes(small):
    repo, project, fps = small
    hashes = _check_hashes(project, "a")
    assert sorted(hashes) == ["id__not_null", "id__type", "id__unique", "v__ge"]

    # description, tags and owner: neither fingerprints nor check hashes move
    repo.replace("project.yml", "  - name: a\n", "  - name: a\n    description: doubled\n    tags: [core, x]\n    owner: me\n")
    repo.commit("metadata")
    project2, fps2 = _fps(repo)
    assert project2.nodes["a"].tags == ("core", "x")
    assert fps2 == fps
    assert _check_hashes(project2, "a") == hashes

    # a check's argument: same fingerprints, that check's hash changes, the others do not
    repo.replace("project.yml", "v: {checks: [{ge: 0}]}", "v: {checks: [{ge: 1}]}")
    repo.commit("check")
    project3, fps3 = _fps(repo)
    assert fps3 == fps
    hashes3 = _check_hashes(project3, "a")
    assert hashes3.keys() == hashes.keys()
    assert {k for k in hashes if hashes[k] != hashes3[k]} == {"v__ge"}
    assert hashes3["v__ge"] == check_hash({"kind": "ge", "column": "v", "args": 1})

    # a new model-level check: fingerprints unchanged, one more declared check
    repo.replace("project.yml", "    sql: select count(*) as n from b\n",
                 "    sql: select count(*) as n from b\n    checks: [{row_count: {min: 1}}]\n")
    repo.commit("new check")
    project4, fps4 = _fps(repo)
    assert fps4 == fps
    assert [c.name for c in declared_checks(project4.nodes["c"])] == ["row_count"]


def test_severity_change_keeps_check_hash(small):
    repo, project, fps = small
    hashes = _check_hashes(project, "a")
    repo.replace("project.yml", "{ge: 0}", "{ge: 0, severity: warn}")
    repo.commit("warn")
    project2, fps2 = _fps(repo)
    assert fps2 == fps
    assert _check_hashes(project2, "a") == hashes
    assert [c.severity for c in declared_checks(project2.nodes["a"]) if c.name == "v__ge"] == ["warn"]


def test_declared_column_type_changes_fingerprint(small):
    repo, project, fps = small
    hashes = _check_hashes(project, "a")
    repo.replace("project.yml", "id: {type: bigint,", "id: {type: integer,")
    repo.commit("type")
    project2, fps2 = _fps(repo)
    assert _changed(fps, fps2) == {"a", "b", "c"}
    assert project2.nodes["a"].declared_types == {"id": "INT"}  # types are stored in canonical form
    changed_checks = {k for k, h in _check_hashes(project2, "a").items() if hashes[k] != h}
    assert changed_checks == {"id__type"}


def test_equivalent_type_spellings_give_the_same_fingerprint(small):
    repo, project, fps = small
    repo.replace("project.yml", "id: {type: bigint,", "id: {type: INT8,")
    repo.commit("same type, other spelling")
    assert _fps(repo)[1] == fps


def test_seed_content_changes_fingerprint(small):
    repo, project, fps = small
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,20\n3,31\n")
    repo.commit("data")
    project2, fps2 = _fps(repo)
    assert project2.nodes["nums"].content_digest != project.nodes["nums"].content_digest
    assert _changed(fps, fps2) == {"nums", "a", "b", "c"}
    # and back: the old content gives the old fingerprints again (content-addressed)
    repo.write("seeds/nums.csv", SMALL_PROJECT["seeds/nums.csv"])
    repo.commit("revert data")
    assert _fps(repo)[1] == fps


def test_old_commit_keeps_its_fingerprints(small):
    repo, _, fps = small
    first = repo.head()
    repo.write("seeds/nums.csv", "id,v\n9,9\n")
    repo.commit("data")
    assert _fps(repo, first)[1] == fps
    assert _fps(repo)[1]["nums"] != fps["nums"]


def test_python_model_fingerprint_follows_its_file(make_repo):
    files = dict(SMALL_PROJECT)
    files["py.yml"] = "models:\n  - name: p\n    python: models/p.py:model\n  - name: q\n    sql: select * from p\n"
    files["models/p.py"] = "def model(a):\n    return a\n"
    repo = make_repo(files)
    project, fps = _fps(repo)
    assert project.nodes["p"].deps == ("a",)
    repo.write("models/p.py", "def model(a):\n    return a.head(1)\n")
    repo.commit("py")
    _, fps2 = _fps(repo)
    assert _changed(fps, fps2) == {"p", "q"}


def test_node_fingerprint_uses_upstream_fingerprints(small):
    _, project, fps = small
    node = project.nodes["b"]
    assert node_fingerprint(node, fps) == fps["b"]
    assert node_fingerprint(node, {**fps, "a": "0" * 64}) != fps["b"]
    # an unrelated upstream value is not part of it
    assert node_fingerprint(node, {**fps, "c": "0" * 64}) == fps["b"]
