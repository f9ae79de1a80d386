"""Fingerprints and check hashes of loaded projects across commits."""

from __future__ import annotations

import pytest

from gitops_data.fingerprint import check_hash, node_fingerprint, project_fingerprints
from gitops_data.project.checks import declared_checks
from gitops_data.project.loader import load_project
from gitops_data.project.tree import GitTree
from gitops_data_tests.conftest import SMALL_PROJECT


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
    repo.replace(
        "project.yml",
        A_SQL,
        "    sql: |\n      -- the same query\n      SELECT id,\n"
        "             v   /* value */\n      FROM   nums\n",
    )
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
    repo.replace(
        "project.yml", "    sql: select id, v * 2 as v2 from a\n", "    sql: select id, v * 3 as v2 from a\n"
    )
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
    repo.replace(
        "project.yml",
        "  - name: a\n",
        "  - name: a\n    description: doubled\n    tags: [core, x]\n    owner: me\n",
    )
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
    repo.replace(
        "project.yml",
        "    sql: select count(*) as n from b\n",
        "    sql: select count(*) as n from b\n    checks: [{row_count: {min: 1}}]\n",
    )
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
    files["py.yml"] = (
        "models:\n  - name: p\n    python: models/p.py:model\n  - name: q\n    sql: select * from p\n"
    )
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
