"""Every declared check kind, passing and failing, on real builds (Git repo, DuckDB file, Dagster runs).

One model per check kind. Commit 1 makes every check pass and is published; commit 2 changes each
model's SQL so that its check fails with a known number of failing rows, and is blocked; commit 3
fails only a `severity: warn` check, and is published with the failure on record.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest

from gitops_data.errors import PublishBlocked
from gitops_data_tests.conftest import fresh_database, init_repo, query, sync


def _q(warehouse: str, sql: str, params: list | None = None) -> list[tuple]:
    return query(SimpleNamespace(warehouse=warehouse), sql, params)


def _sync(repo, warehouse, instance, ref="main"):
    from gitops_data.deployment.core import Deployment

    return sync(Deployment.from_env(str(repo.path), warehouse), ref, instance)


SEED = "id\n" + "".join(f"{i}\n" for i in range(1, 11))  # ids 1..10
EMAIL = r"'^[a-z]+@[a-z]+\.com$'"
POLARS = """'pl.col("lo") <= pl.col("hi")'"""

# (model, declaration, passing SQL, failing SQL, check name, severity, failed rows of the failing SQL)
CASES = [
    (
        "chk_type",
        "columns: {v: {type: bigint}}",
        "select id as v from nums",
        "select id::integer + 0 as v from nums",  # a cast alone is a validate error (column analysis)
        "v__type",
        "error",
        1,
    ),
    (
        "chk_not_null",
        "columns: {v: {nullable: false}}",
        "select id as v from nums",
        "select case when id <= 2 then null else id end as v from nums",
        "v__not_null",
        "error",
        2,
    ),
    (
        "chk_unique",
        "columns: {v: {unique: true}}",  # every row of a duplicated value counts: 8, 8, 8
        "select id as v from nums",
        "select least(id, 8) as v from nums",
        "v__unique",
        "error",
        3,
    ),
    (
        "chk_ge",
        "columns: {v: {checks: [{ge: 0}]}}",
        "select id - 1 as v from nums",
        "select id - 3 as v from nums",
        "v__ge",
        "error",
        2,
    ),
    (
        "chk_gt",
        "columns: {v: {checks: [{gt: 0}]}}",
        "select id as v from nums",
        "select id - 3 as v from nums",
        "v__gt",
        "error",
        3,
    ),
    (
        "chk_le",
        "columns: {v: {checks: [{le: 10}]}}",
        "select id as v from nums",
        "select id + 2 as v from nums",
        "v__le",
        "error",
        2,
    ),
    (
        "chk_lt",
        "columns: {v: {checks: [{lt: 10}]}}",
        "select id - 1 as v from nums",
        "select id + 1 as v from nums",
        "v__lt",
        "error",
        2,
    ),
    (
        "chk_between",
        "columns: {v: {checks: [{between: {min: 1, max: 10}}]}}",
        "select id as v from nums",
        "select id * 2 - 5 as v from nums",
        "v__between",
        "error",
        5,
    ),
    (
        "chk_isin",
        "columns: {v: {checks: [{isin: [a, b, c]}]}}",
        "select ['a', 'b', 'c'][id % 3 + 1] as v from nums",
        "select ['a', 'b', 'x'][id % 3 + 1] as v from nums",
        "v__isin",
        "error",
        3,
    ),
    (
        "chk_notin",
        "columns: {v: {checks: [{notin: [x, y]}]}}",
        "select 'a' as v from nums",
        "select case when id > 6 then 'x' else 'a' end as v from nums",
        "v__notin",
        "error",
        4,
    ),
    (
        "chk_str_matches",
        f"columns: {{v: {{checks: [{{str_matches: {EMAIL}}}]}}}}",
        "select 'user@example.com' as v from nums",
        "select case when id % 5 = 0 then 'no-at.com' else 'user@example.com' end as v from nums",
        "v__str_matches",
        "error",
        2,
    ),
    (
        "chk_str_length",
        "columns: {v: {checks: [{str_length: {min: 2, max: 4}}]}}",
        "select repeat('a', cast(id % 3 + 2 as integer)) as v from nums",
        "select repeat('a', cast(id % 6 as integer)) as v from nums",
        "v__str_length",
        "error",
        4,
    ),  # lengths 1 2 3 4 5 0 1 2 3 4
    (
        "chk_row_count",
        "checks: [{row_count: {min: 5, max: 10}}]",
        "select * from nums",
        "select * from nums where id <= 3",
        "row_count",
        "error",
        1,
    ),
    (
        "chk_unique_cols",
        "checks: [{unique: [a, b]}]",
        "select id % 5 as a, id // 5 as b from nums",
        "select id % 5 as a, least(id // 5, 1) as b from nums",
        "unique_combination",
        "error",
        2,
    ),
    (
        "chk_not_empty",
        "checks: [not_empty]",
        "select * from nums",
        "select * from nums where false",
        "not_empty",
        "error",
        1,
    ),
    (
        "chk_relationship",
        "checks: [{relationship: {column: pid, to: rel_parent, field: id}}]",
        "select id as pid from rel_parent",
        "select id + 3 as pid from rel_parent",
        "relationship",
        "error",
        3,
    ),
    (
        "chk_expr_sql",
        "checks: [{expression: {sql: 'lo <= hi'}}]",
        "select id as lo, id + 1 as hi from nums",
        "select id as lo, 8 - id as hi from nums",
        "expression",
        "error",
        6,
    ),
    (
        "chk_expr_polars",
        f"checks: [{{expression: {{polars: {POLARS}}}}}]",
        "select id as lo, id as hi from nums",
        "select id as lo, 9 - id as hi from nums",
        "expression",
        "error",
        6,
    ),
    (
        "chk_freshness",
        "checks: [{freshness: {column: ts, max_age: 1d}}]",
        "select id, timezone('UTC', now()) - id * interval 1 minute as ts from nums",
        "select id, timestamp '2000-01-01' + id * interval 1 minute as ts from nums",
        "freshness",
        "error",
        1,
    ),
    (
        "chk_warn",
        "columns: {v: {checks: [{ge: 0, severity: warn}]}}",
        "select id as v from nums",
        "select id - 4 as v from nums",
        "v__ge",
        "warn",
        3,
    ),
]
CASE_IDS = [f"{c[0]}.{c[4]}" for c in CASES]


def _project(failing: set[str]) -> dict[str, str]:
    yml = [
        "seeds:",
        "  - name: nums",
        "    path: seeds/nums.csv",
        "models:",
        "  - name: rel_parent",
        "    sql: select id from nums where id <= 7",
    ]
    for model, decl, good, bad, *_ in CASES:
        yml += [
            f"  - name: {model}",
            f"    sql: {json.dumps(bad if model in failing else good)}",
            f"    {decl}",
        ]
    return {"gitops_data.yaml": "name: t\n", "seeds/nums.csv": SEED, "project.yml": "\n".join(yml) + "\n"}


AUDITS = """select b.model, a.check_name, a.passed, a.severity, a.failed_rows
             from gitops_meta.audits a join gitops_meta.builds b using (build_id) where {where}"""
SERVED = "build_id in (select build_id from gitops_meta.env_views where env = 'main')"


# Not on Spark yet: the project's DuckDB SQL transpiles to Spark SQL that fails there (sqlglot keeps
# `timezone('UTC', x)`, which Spark lacks, and DuckDB's 1-based `list[i]`, which Spark reads 0-based)
@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def run(request, tmp_path_factory):
    """The three syncs, once for the module and engine; what they left in gitops_meta, read with SQL."""
    tmp = tmp_path_factory.mktemp("checks")
    if request.param == "duckdb":
        yield from _run(tmp, str(tmp / "wh" / "warehouse.duckdb"))
    else:
        with fresh_database(request.getfixturevalue("postgres_server")) as wh:
            yield from _run(tmp, wh)


def _run(tmp, wh: str):
    import dagster as dg

    repo = init_repo(tmp / "repo", _project(set()))
    out: dict = {"commits": [repo.head()]}

    def snapshot(name, audits_where, params=()):
        out[name] = {
            "served": _q(wh, "select commit from gitops_meta.environments where env = 'main'"),
            "views": sorted(_q(wh, "select model, build_id from gitops_meta.env_views where env = 'main'")),
            "audits": {(m, c): r for m, c, *r in _q(wh, AUDITS.format(where=audits_where), list(params))},
            "counts": _q(wh, "select count(*), count(*) filter (where passed) from gitops_meta.audits")[0],
            "ref_status": _q(wh, "select status, commit from gitops_meta.ref_status where env = 'main'"),
        }

    def commit(failing, message):
        repo.write("project.yml", _project(failing)["project.yml"])
        out["commits"].append(repo.commit(message))

    (tmp / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp / "home")) as instance:
        _sync(repo, wh, instance)
        snapshot("pass", SERVED)

        commit({c[0] for c in CASES}, "break every check")
        with pytest.raises(PublishBlocked) as exc:
            _sync(repo, wh, instance)
        out["blocked_message"] = str(exc.value)
        snapshot("fail", "b.commit = ?", [out["commits"][1]])

        commit({"chk_warn"}, "only a warn check fails")
        _sync(repo, wh, instance)
        snapshot("warn", SERVED)
    yield out


def test_passing_commit_is_published_with_every_audit_passed(run):
    assert run["pass"]["served"] == [(run["commits"][0],)]
    assert run["pass"]["ref_status"] == [("published", run["commits"][0])]
    assert run["pass"]["counts"] == (len(CASES), len(CASES))
    assert set(run["pass"]["audits"]) == {(c[0], c[4]) for c in CASES}


@pytest.mark.parametrize(("model", "check", "severity"), [(c[0], c[4], c[5]) for c in CASES], ids=CASE_IDS)
def test_check_passes(run, model, check, severity):
    assert run["pass"]["audits"].get((model, check)) == [True, severity, 0]


@pytest.mark.parametrize(
    ("model", "check", "severity", "failed_rows"), [(c[0], c[4], c[5], c[6]) for c in CASES], ids=CASE_IDS
)
def test_check_fails(run, model, check, severity, failed_rows):
    assert run["fail"]["audits"].get((model, check)) == [False, severity, failed_rows]


def test_failing_commit_is_blocked_and_previous_commit_stays_served(run):
    c1, c2, _ = run["commits"]
    assert run["fail"]["served"] == [(c1,)]
    assert run["fail"]["views"] == run["pass"]["views"]
    assert run["fail"]["ref_status"] == [("blocked", c2)]
    assert len(run["fail"]["audits"]) == len(CASES)  # every check ran on commit 2's builds
    for model, _, _, _, check, severity, _ in CASES:  # the message names exactly the blocking failures
        assert (f"{model}.{check}" in run["blocked_message"]) == (severity == "error"), model


def test_failing_warn_check_publishes_and_is_reported(run):
    c3 = run["commits"][2]
    assert run["warn"]["served"] == [(c3,)]
    assert run["warn"]["ref_status"] == [("published", c3)]
    audits = run["warn"]["audits"]
    assert audits.pop(("chk_warn", "v__ge")) == [False, "warn", 3]
    assert all(r[0] for r in audits.values()) and len(audits) == len(CASES) - 1
    # only chk_warn serves a new build; every other model still serves its build of commit 1
    assert {m for m, _ in set(run["warn"]["views"]) - set(run["pass"]["views"])} == {"chk_warn"}


# --------------------------------------------------------------------------------------------------
# checks that read other models, and time zones


def _mini(models: str) -> dict[str, str]:
    """A project of the seed `nums` and `models` (entries of its models: list)."""
    return {
        "gitops_data.yaml": "name: t\n",
        "seeds/nums.csv": SEED,
        "project.yml": "seeds:\n  - name: nums\n    path: seeds/nums.csv\nmodels:\n" + models,
    }


def _served(warehouse: str) -> list[tuple]:
    return _q(warehouse, "select commit from gitops_meta.environments where env = 'main'")


# `child` checks a relationship to a model it does not read in its SQL (as in the README's example)
CHILD = (
    "  - name: child\n    sql: select id as pid from nums\n"
    "    checks: [{relationship: {column: pid, to: PARENT, field: id}}]\n"
)
PARENT = "  - name: PARENT\n    sql: select id from nums\n"


def test_relationship_to_a_model_built_later_in_the_same_run(make_repo, warehouse, instance):
    repo = make_repo(_mini((PARENT + CHILD).replace("PARENT", "zz_parent")))  # built after `child`
    _sync(repo, warehouse, instance)
    assert _served(warehouse) == [(repo.head(),)]


def test_a_relationship_is_checked_while_an_unrelated_model_still_builds(
    make_repo, warehouse, instance, monkeypatch
):
    """A check that reads another model runs once the builds it reads exist, not after every build."""
    from gitops_data.warehouse import scheduler

    monkeypatch.setenv("GITOPS_DATA_THREADS", "2")
    checked, seen = threading.Event(), {}
    build, check = scheduler.execute_build, scheduler._check_step

    def execute_build(cat, plan, step, *args, **kwargs):
        if step.name == "unrelated":  # holds one of the two threads until child's relationship ran
            seen["checked before"] = checked.wait(20)
        return build(cat, plan, step, *args, **kwargs)

    def check_step(cat, plan, step, names, run_id):
        checked.set()
        return check(cat, plan, step, names, run_id)

    monkeypatch.setattr(scheduler, "execute_build", execute_build)
    monkeypatch.setattr(scheduler, "_check_step", check_step)
    unrelated = "  - name: unrelated\n    sql: select 1 as x\n"
    repo = make_repo(_mini((PARENT + CHILD).replace("PARENT", "parent") + unrelated))
    _sync(repo, warehouse, instance)
    assert seen == {"checked before": True}
    assert _served(warehouse) == [(repo.head(),)]


def test_relationship_is_reaudited_when_its_target_changes(make_repo, warehouse, instance):
    repo = make_repo(_mini(PARENT.replace("PARENT", "parent")))
    _sync(repo, warehouse, instance)  # parent first, so the next check can find it whatever the run order
    repo.write("project.yml", _mini((PARENT + CHILD).replace("PARENT", "parent"))["project.yml"])
    c2 = repo.commit("child with a relationship to parent")
    _sync(repo, warehouse, instance)
    assert _served(warehouse) == [(c2,)]
    repo.replace("project.yml", "select id from nums\n", "select id from nums where id <= 7\n")
    repo.commit("parent loses ids 8, 9, 10: child has 3 orphans")
    with pytest.raises(PublishBlocked, match=r"child\.relationship \(3 rows\)"):
        _sync(repo, warehouse, instance)
    assert _served(warehouse) == [(c2,)]


@pytest.fixture
def tz_tokyo(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # DuckDB connections take their TimeZone from it
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_freshness_of_a_timestamptz_outside_utc(make_repo, warehouse, instance, tz_tokyo):
    repo = make_repo(
        _mini(
            "  - name: stale\n    sql: select now() - interval 5 hour as ts\n"
            "    checks: [{freshness: {column: ts, max_age: 1h}}]\n"
        )
    )
    with pytest.raises(PublishBlocked, match="stale.freshness"):
        _sync(repo, warehouse, instance)
