"""project/cache.py: a load is reused only for a tree of the same content; any change is seen."""

from __future__ import annotations

import pytest

from gitops_data.errors import ProjectError
from gitops_data.fingerprint import project_fingerprints
from gitops_data.project.cache import PROJECTS, ProjectCache
from gitops_data.project.dbt.template_cache import TEMPLATES
from gitops_data.project.loader import load_project
from gitops_data.project.tree import DirTree, GitTree

YAML = {
    "gitops_data.yaml": "name: cached\n",
    "seeds/base.csv": "id,v\n1,2\n",
    "inputs.yml": "seeds:\n  - name: base\n    path: seeds/base.csv\n",
    "models.yml": (
        "models:\n"
        "  - name: up\n    sql: select id, v from base\n"
        "  - name: down\n    sql: select id, v + 1 as v from up\n"
    ),
}
DBT = {
    "dbt_project.yml": (
        "name: cached\nversion: '1.0.0'\nconfig-version: 2\nprofile: cached\n"
        "model-paths: [models]\nseed-paths: [seeds]\nmacro-paths: [macros]\nvars:\n  bump: 1\n"
    ),
    "seeds/base.csv": "id,v\n1,2\n",
    "macros/plus.sql": "{% macro plus(col) -%} {{ col }} + {{ var('bump') }} {%- endmacro %}\n",
    "models/up.sql": "select id, {{ plus('v') }} as v from {{ ref('base') }}\n",
    "models/down.sql": "select id, v from {{ ref('up') }}\n",
    "models/env.sql": (
        "select id, '{{ env_var('CACHE_TEST_LABEL', 'none') }}' as label from {{ ref('base') }}\n"
    ),
}


@pytest.fixture(autouse=True)
def empty_caches():
    PROJECTS.clear()
    TEMPLATES.clear()
    yield
    PROJECTS.clear()


def _load(repo, sha: str | None = None):
    return load_project(GitTree(str(repo.path), sha or repo.head()))


def test_a_tree_of_the_same_content_loads_once_and_keeps_its_own_commit(make_repo):
    repo = make_repo(YAML)
    first = repo.head()
    again = repo.commit("nothing changed")
    a, b = _load(repo, first), _load(repo, again)
    assert (PROJECTS.hits, PROJECTS.misses) == (1, 1)
    assert a.nodes is b.nodes
    assert (a.commit, b.commit) == (first, again)


def test_a_changed_file_is_loaded_anew_and_changes_the_downstream_fingerprints(make_repo):
    repo = make_repo(YAML)
    before = project_fingerprints(_load(repo))
    repo.replace("models.yml", "select id, v from base", "select id, v * 2 as v from base")
    after_sha = repo.commit()
    after = project_fingerprints(_load(repo, after_sha))
    assert PROJECTS.misses == 2
    assert after["up"] != before["up"] and after["down"] != before["down"]
    assert after["base"] == before["base"]


def test_a_changed_data_file_is_seen(make_repo):
    repo = make_repo(YAML)
    before = project_fingerprints(_load(repo))
    repo.write("seeds/base.csv", "id,v\n1,3\n")
    after = project_fingerprints(_load(repo, repo.commit()))
    assert after["base"] != before["base"] and after["down"] != before["down"]


def test_a_working_copy_change_is_seen(make_repo):
    repo = make_repo(YAML)
    before = load_project(DirTree(str(repo.path)))
    repo.replace("models.yml", "v + 1", "v + 2")
    after = load_project(DirTree(str(repo.path)))
    assert before.nodes["down"].sql != after.nodes["down"].sql
    assert "v + 2" in (after.nodes["down"].sql or "")


def test_an_invalid_project_raises_its_issues_again_for_the_tree_asked_about(make_repo):
    repo = make_repo({**YAML, "models.yml": "models:\n  - name: down\n    sql: select * from nowhere\n"})
    first = repo.head()
    again = repo.commit("same files")
    with pytest.raises(ProjectError, match="unknown reference 'nowhere'") as one:
        _load(repo, first)
    with pytest.raises(ProjectError, match="unknown reference 'nowhere'") as two:
        load_project(GitTree(str(repo.path), again, label="feature/x"))
    assert PROJECTS.hits == 1
    assert str(one.value).startswith(f"project at {first[:10]}")
    assert str(two.value).startswith("project at feature/x")


def test_a_load_that_reads_a_hidden_file_is_not_cached(make_repo):
    files = {**YAML, ".hidden/up.sql": "select id, v from base\n"}
    files["models.yml"] = files["models.yml"].replace(
        "    sql: select id, v from base\n", "    sql_file: .hidden/up.sql\n"
    )
    repo = make_repo(files)
    before = _load(repo)
    assert "from base" in (before.nodes["up"].sql or "")
    repo.write(".hidden/up.sql", "select id, v * 3 as v from base\n")
    after = _load(repo, repo.commit())
    assert "* 3" in (after.nodes["up"].sql or "")
    assert PROJECTS.hits == 0 and not PROJECTS._entries


def test_a_dbt_macro_change_is_seen_and_only_changed_templates_compile_again(make_repo):
    repo = make_repo(DBT)
    before = _load(repo)
    compiled = TEMPLATES.misses
    repo.replace("macros/plus.sql", "{{ col }} + {{ var('bump') }}", "{{ col }} * {{ var('bump') }}")
    after = _load(repo, repo.commit())
    assert "* 1" in (after.nodes["up"].sql or "") and "+ 1" in (before.nodes["up"].sql or "")
    assert project_fingerprints(after)["down"] != project_fingerprints(before)["down"]
    assert TEMPLATES.misses == compiled + 1  # the macro file; the models' code is reused
    assert TEMPLATES.hits >= 3


def test_a_dbt_var_change_is_seen(make_repo):
    repo = make_repo(DBT)
    before = _load(repo)
    repo.replace("dbt_project.yml", "bump: 1", "bump: 5")
    after = _load(repo, repo.commit())
    assert "+ 5" in (after.nodes["up"].sql or "") and "+ 1" in (before.nodes["up"].sql or "")


def test_a_dbt_model_change_is_seen(make_repo):
    repo = make_repo(DBT)
    _load(repo)
    repo.replace("models/down.sql", "select id, v", "select id, v, v as w")
    after = _load(repo, repo.commit())
    assert "w" in (after.nodes["down"].sql or "")


def test_an_environment_variable_change_is_seen(make_repo, monkeypatch):
    repo = make_repo(DBT)
    monkeypatch.setenv("CACHE_TEST_LABEL", "one")
    one = _load(repo)
    monkeypatch.setenv("CACHE_TEST_LABEL", "two")
    two = _load(repo)
    assert "'one'" in (one.nodes["env"].sql or "") and "'two'" in (two.nodes["env"].sql or "")
    assert PROJECTS.hits == 0


def test_the_cache_keeps_at_most_its_limit(make_repo):
    repo = make_repo(YAML)
    cache = ProjectCache(limit=2)
    shas = []
    for i in range(3):
        repo.replace("models.yml", f"v + {i + 1}", f"v + {i + 2}")
        shas.append(repo.commit())
    for sha in shas:
        cache.load(GitTree(str(repo.path), sha), "duckdb", load_project)
    assert len(cache._entries) == 2
    cache.load(GitTree(str(repo.path), shas[0]), "duckdb", load_project)
    assert cache.misses == 4


def test_a_commits_files_are_read_once_per_content(make_repo):
    from gitops_data.project import tree as trees

    repo = make_repo(YAML)
    first = GitTree(str(repo.path), repo.head())
    assert first.read("models.yml") == YAML["models.yml"].encode()
    assert trees._BLOBS._data[first.digest("models.yml")] == YAML["models.yml"].encode()
    repo.write("inputs.yml", YAML["inputs.yml"] + "# changed\n")
    repo.replace("models.yml", "v + 1", "v + 2")
    second = GitTree(str(repo.path), repo.commit("two files changed"))
    assert second.digest("seeds/base.csv") == first.digest("seeds/base.csv")  # shared: from the cache
    assert second.read("seeds/base.csv") == YAML["seeds/base.csv"].encode()
    assert second.read("models.yml") == YAML["models.yml"].replace("v + 1", "v + 2").encode()
    assert first.read("models.yml") == YAML["models.yml"].encode()  # each commit its own content


def test_a_models_column_analysis_is_redone_when_its_inputs_change(make_repo):
    files = {**YAML, "models.yml": YAML["models.yml"].replace("v + 1 as v", "v + 1 as w")}
    repo = make_repo(files)
    load_project(GitTree(str(repo.path), repo.head()))
    repo.replace("models.yml", "sql: select id, v from base", "sql: select id from base")
    broken = repo.commit("up drops v")
    with pytest.raises(ProjectError) as exc:
        load_project(GitTree(str(repo.path), broken))
    expected = ["models.yml:5 [down]: column 'v' is not in up (columns: id)"]
    assert [str(i) for i in exc.value.issues] == expected
    repo.write("inputs.yml", YAML["inputs.yml"] + "# another file changed\n")
    with pytest.raises(ProjectError) as exc:  # down's analysis reused, with its finding
        load_project(GitTree(str(repo.path), repo.commit("comment")))
    assert [str(i) for i in exc.value.issues] == expected
    repo.replace("models.yml", "sql: select id from base", "sql: select id, v from base")
    project = load_project(GitTree(str(repo.path), repo.commit("v is back")))
    assert project.columns.of("down").names == ["id", "w"]
