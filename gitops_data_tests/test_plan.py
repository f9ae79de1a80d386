"""plan.make_plan against hand-made catalog states."""

from __future__ import annotations

from gitops_data.fingerprint import project_fingerprints
from gitops_data.plan import AuditRecord, BuildRecord, CatalogState, make_plan
from gitops_data.project.checks import declared_checks
from gitops_data.project.loader import load_project
from gitops_data.project.tree import GitTree
from gitops_data_tests.conftest import SMALL_PROJECT

C1 = "1" * 40
C2 = "2" * 40
A_CHECKS = ["id__type", "id__not_null", "id__unique", "v__ge"]


def _load(make_repo, files=None):
    repo = make_repo(files or dict(SMALL_PROJECT))
    return repo, *_at(repo)


def _at(repo):
    project = load_project(GitTree(str(repo.path), repo.head()))
    return project, project_fingerprints(project)


def _builds(project, fps, commit=C1, tag="b") -> dict[str, BuildRecord]:
    return {
        name: BuildRecord(f"{tag}_{name}", name, fps[name], f"{name}__{fps[name][:12]}__{tag}", commit)
        for name, node in project.nodes.items()
        if node.built
    }


def _audits(project, builds, fail: dict[str, int] | None = None) -> dict:
    """An audit record for every declared check of every build; checks in `fail` failed with n rows."""
    fail = fail or {}
    out = {}
    for name, build in builds.items():
        out[build.build_id] = {
            (c.name, c.hash): AuditRecord(
                build.build_id,
                c.name,
                c.hash,
                f"{name}.{c.name}" not in fail,
                fail.get(f"{name}.{c.name}", 0),
            )
            for c in declared_checks(project.nodes[name])
        }
    return out


def _published_state(project, fps, fail=None) -> CatalogState:
    builds = _builds(project, fps)
    return CatalogState(
        candidates={(n, b.fingerprint): (b,) for n, b in builds.items()},
        audits=_audits(project, builds, fail),
        published=dict(builds),
        published_commit=C1,
    )


def _plan(project, fps, state, commit=C2, rebuild=frozenset()):
    ids = iter(f"new{i:05d}" for i in range(1000))  # build ids are fixed by the plan; deterministic here
    return make_plan(project, fps, state, "dev", "analytics__dev", commit, rebuild, new_id=lambda: next(ids))


def test_first_build(make_repo):
    _, project, fps = _load(make_repo)
    plan = _plan(project, fps, CatalogState())
    assert plan.to_build == ["nums", "a", "b", "c"]
    assert {m.reason for m in plan.models.values()} == {"first build"}
    assert [m.fingerprint for m in plan.models.values()] == [fps[n] for n in ("nums", "a", "b", "c")]
    assert plan.models["a"].checks_in("pending") == A_CHECKS
    assert plan.models["a"].previous_fingerprint is None
    assert plan.to_audit == {}  # checks of new builds run with the build, not as re-audits
    assert not plan.ready
    # a new build's id and table are fixed by the plan, and downstream SQL reads exactly that table
    assert plan.views == {n: f"{n}__{fps[n][:12]}__new{i:05d}" for i, n in enumerate(("nums", "a", "b", "c"))}
    assert [(r.model, r.planned) for r in plan.models["b"].reads] == [("a", True)]
    assert f'"gitops_internal"."{plan.views["a"]}"' in plan.models["b"].sql
    assert plan.removed == ()
    assert plan.previous_commit is None and not plan.unchanged
    assert (plan.env, plan.schema, plan.commit) == ("dev", "analytics__dev", C2)


def test_new_model_in_a_published_environment(make_repo):
    repo, project, fps = _load(make_repo)
    state = _published_state(project, fps)
    repo.write("new.yml", "models:\n  - name: d\n    sql: select * from c\n")
    repo.commit("d")
    project2, fps2 = _at(repo)
    plan = _plan(project2, fps2, state)
    assert plan.to_build == ["d"]
    assert plan.models["d"].reason == "new model"


def test_all_reuse(make_repo):
    _, project, fps = _load(make_repo)
    state = _published_state(project, fps)
    plan = _plan(project, fps, state, commit=C1)
    assert plan.to_build == []
    assert {m.action for m in plan.models.values()} == {"reuse"}
    assert {m.reason for m in plan.models.values()} == {"unchanged"}
    assert plan.models["a"].checks_in("passed") == A_CHECKS
    assert plan.to_audit == {}
    assert plan.failures() == [] and plan.failures(blocking=False) == []
    assert plan.ready
    assert plan.unchanged
    assert plan.views == {n: state.published[n].table for n in ("nums", "a", "b", "c")}
    assert plan.models["b"].build is state.published["b"]


def test_reuse_of_a_build_made_for_another_commit(make_repo):
    _, project, fps = _load(make_repo)
    builds = _builds(project, fps, commit="abcdef1234" + "0" * 30, tag="other")
    state = CatalogState(
        candidates={(n, b.fingerprint): (b,) for n, b in builds.items()}, audits=_audits(project, builds)
    )
    plan = _plan(project, fps, state)
    assert plan.to_build == []
    assert plan.models["a"].reason == "reuses build other_a made for commit abcdef1234"
    assert plan.ready


def test_changed_model_rebuilds_it_and_its_downstream_only(make_repo):
    repo, project, fps = _load(make_repo)
    state = _published_state(project, fps)
    repo.replace("project.yml", "select id, v * 2 as v2 from a", "select id, v * 3 as v2 from a")
    repo.commit("change b")
    project2, fps2 = _at(repo)
    plan = _plan(project2, fps2, state)
    assert plan.to_build == ["b", "c"]
    assert [m.action for m in plan.models.values()] == ["reuse", "reuse", "build", "build"]
    assert plan.models["b"].reason == f"fingerprint changed ({fps['b'][:10]} -> {fps2['b'][:10]})"
    assert plan.models["b"].previous_fingerprint == fps["b"]
    assert plan.models["a"].build is state.published["a"]
    assert plan.views == {
        "nums": state.published["nums"].table,
        "a": state.published["a"].table,
        "b": f"b__{fps2['b'][:12]}__new00000",
        "c": f"c__{fps2['c'][:12]}__new00001",
    }
    assert f'"gitops_internal"."{state.published["a"].table}"' in plan.models["b"].sql
    assert not plan.ready
    assert plan.previous_commit == C1


def test_checks_only_change_reuses_with_pending_checks(make_repo):
    repo, project, fps = _load(make_repo)
    state = _published_state(project, fps)
    repo.replace("project.yml", "{ge: 0}", "{ge: 1}")
    repo.commit("stricter check")
    project2, fps2 = _at(repo)
    assert fps2 == fps
    plan = _plan(project2, fps2, state)
    assert plan.to_build == []
    assert plan.to_audit == {"a": ["v__ge"]}
    assert plan.models["a"].checks_in("passed") == ["id__type", "id__not_null", "id__unique"]
    assert not plan.ready  # a blocking check has not run on this build yet

    # once the new definition is audited on the build, the plan is ready
    build = state.published["a"]
    new = next(c for c in declared_checks(project2.nodes["a"]) if c.name == "v__ge")
    audits = {
        **state.audits,
        build.build_id: {
            **state.audits[build.build_id],
            ("v__ge", new.hash): AuditRecord(build.build_id, "v__ge", new.hash, True, 0),
        },
    }
    plan2 = _plan(project2, fps2, CatalogState(state.candidates, audits, state.published, C1))
    assert plan2.to_audit == {} and plan2.ready


def test_failed_blocking_check(make_repo):
    _, project, fps = _load(make_repo)
    state = _published_state(project, fps, fail={"a.id__unique": 2})
    plan = _plan(project, fps, state)
    assert plan.failures() == [("a", "id__unique", 2)]
    assert plan.failures(blocking=False) == []
    assert plan.models["a"].checks_in("failed") == ["id__unique"]
    assert plan.to_audit == {}
    assert not plan.ready


def test_failed_warn_check_does_not_block(make_repo):
    files = dict(SMALL_PROJECT)
    files["project.yml"] = files["project.yml"].replace("{ge: 0}", "{ge: 0, severity: warn}")
    _, project, fps = _load(make_repo, files)
    state = _published_state(project, fps, fail={"a.v__ge": 1})
    plan = _plan(project, fps, state)
    assert plan.failures() == []
    assert plan.failures(blocking=False) == [("a", "v__ge", 1)]
    assert plan.ready


def test_pending_warn_check_does_not_block_but_is_audited(make_repo):
    files = dict(SMALL_PROJECT)
    files["project.yml"] = files["project.yml"].replace("{ge: 0}", "{ge: 0, severity: warn}")
    _, project, fps = _load(make_repo, files)
    state = _published_state(project, fps)
    build_id = state.published["a"].build_id
    audits = {**state.audits, build_id: {k: v for k, v in state.audits[build_id].items() if k[0] != "v__ge"}}
    plan = _plan(project, fps, CatalogState(state.candidates, audits, state.published, C1))
    assert plan.to_audit == {"a": ["v__ge"]}
    assert plan.ready


def test_audit_of_an_old_check_definition_counts_as_pending(make_repo):
    _, project, fps = _load(make_repo)
    state = _published_state(project, fps)
    build_id = state.published["a"].build_id
    stale = {k: v for k, v in state.audits[build_id].items() if k[0] != "id__unique"}
    stale[("id__unique", "0" * 16)] = AuditRecord(
        build_id, "id__unique", "0" * 16, True, 0
    )  # an old definition
    plan = _plan(
        project, fps, CatalogState(state.candidates, {**state.audits, build_id: stale}, state.published, C1)
    )
    assert plan.to_audit == {"a": ["id__unique"]}
    assert not plan.ready


def test_removed_models_are_listed(make_repo):
    repo, project, fps = _load(make_repo)
    state = _published_state(project, fps)
    repo.replace("project.yml", "  - name: c\n    sql: select count(*) as n from b\n", "")
    repo.commit("drop c")
    project2, fps2 = _at(repo)
    gone = BuildRecord("b_zz", "zz_old", "f" * 64, "zz_old__ffff__b", C1)
    state2 = CatalogState(state.candidates, state.audits, {**state.published, "zz_old": gone}, C1)
    plan = _plan(project2, fps2, state2)
    assert plan.removed == ("c", "zz_old")
    assert list(plan.models) == ["nums", "a", "b"]
    assert plan.to_build == []
    assert plan.ready


def test_rebuild_forces_the_model_and_its_downstream(make_repo):
    _, project, fps = _load(make_repo)
    state = _published_state(project, fps)
    plan = _plan(project, fps, state, commit=C1, rebuild=frozenset({"a"}))
    assert plan.to_build == ["a", "b", "c"]
    assert plan.models["nums"].action == "reuse"
    assert plan.models["a"].reason == "scheduled refresh"
    assert plan.models["b"].reason == "upstream a rebuilt" and plan.models["c"].reason == "upstream b rebuilt"
    assert plan.models["b"].mode == plan.models["c"].mode == "refresh"
    assert plan.models["a"].build.build_id == "new00000" and plan.models["a"].build.commit == C1
    assert plan.models["a"].checks_in("pending") == A_CHECKS
    assert not plan.ready


def test_external_tables_are_never_built_but_rebuild_refreshes_readers(make_repo):
    files = dict(SMALL_PROJECT)
    files["ext.yml"] = (
        "sources:\n  - name: ext\n    table: main.ext_orders\n"
        "models:\n  - name: e\n    sql: select * from ext\n"
    )
    _, project, fps = _load(make_repo, files)
    state = _published_state(project, fps)
    assert "ext" not in state.published
    plan = _plan(project, fps, state)
    assert plan.models["ext"].action == "external"
    assert plan.models["ext"].reason == "external table main.ext_orders"
    assert plan.to_build == [] and plan.ready
    refresh = _plan(project, fps, state, rebuild=frozenset({"ext"}))
    assert refresh.models["ext"].action == "external"
    assert refresh.to_build == ["e"]
    assert refresh.models["e"].reason == "scheduled refresh"


def test_missing_build_is_rebuilt(make_repo):
    _, project, fps = _load(make_repo)
    state = _published_state(project, fps)
    candidates = {k: v for k, v in state.candidates.items() if k[0] != "b"}
    plan = _plan(project, fps, CatalogState(candidates, state.audits, state.published, C1))
    assert plan.to_build == ["b"]
    assert plan.models["b"].reason.startswith("no valid build of this definition")
