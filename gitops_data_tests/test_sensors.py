"""End to end: a real Git repo and a real Dagster instance, driven through the Git-ref sensor.

commit on main -> published; branch with a changed model -> its own schema, main untouched, unchanged
models shared; merge -> main flips with no build; revert -> flips back with no build; failing
checks -> not published; deleted branch -> schema dropped.
"""

from __future__ import annotations

import dagster as dg
import pytest

from gitops_data.deployment.core import Deployment
from gitops_data_tests.conftest import SMALL_PROJECT, objects
from gitops_data_tests.drive import Driver


@pytest.fixture
def warehouse(any_warehouse) -> str:
    """Both engines (the conformance suite)."""
    return any_warehouse


def _builds(d: Driver) -> int:
    return d.query("select count(*) from gitops_meta.builds")[0][0]


def _view_builds(d: Driver, env: str) -> dict[str, str]:
    return dict(d.query(f"select model, build_id from gitops_meta.env_views where env = '{env}'"))


def test_branch_merge_revert_and_blocked_commit(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)

    d.settle()
    assert d.query("select * from analytics.b order by id") == [(1, 20), (2, 40), (3, 60)]
    main_v1 = _view_builds(d, "main")
    builds_v1 = _builds(d)

    # a branch changes b: its schema shows the change, main does not, a is shared (same table)
    repo.git("checkout", "-q", "-b", "feature/x")
    repo.replace("project.yml", "v * 2 as v2", "v * 3 as v2")
    repo.commit("triple")
    d.settle()
    schema = d.query("select schema_name from gitops_meta.environments where env = 'feature/x'")[0][0]
    assert schema.startswith("analytics__feature_x_")
    assert d.query(f"select v2 from {schema}.b order by id") == [(30,), (60,), (90,)]
    assert d.query("select v2 from analytics.b order by id") == [(20,), (40,), (60,)]
    branch = _view_builds(d, "feature/x")
    assert branch["a"] == main_v1["a"] and branch["nums"] == main_v1["nums"]
    assert branch["b"] != main_v1["b"] and branch["c"] != main_v1["c"]
    assert _builds(d) == builds_v1 + 2  # only b and c were built

    # merge: main flips to the branch's builds, nothing is built
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge feature/x", "feature/x")
    runs_before = len(d.runs)
    d.settle()
    assert len(d.runs) == runs_before and _builds(d) == builds_v1 + 2
    assert _view_builds(d, "main") == branch
    assert d.query("select v2 from analytics.b order by id") == [(30,), (60,), (90,)]

    # revert: main flips back to the original builds, nothing is built
    repo.git("revert", "--no-edit", "HEAD", "-m", "1")
    d.settle()
    assert len(d.runs) == runs_before and _builds(d) == builds_v1 + 2
    assert _view_builds(d, "main") == main_v1
    history = d.query("select commit from gitops_meta.publishes where env = 'main' order by published_at")
    assert len(history) == 3

    # a commit whose data breaks a blocking check is built and audited but not published
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,-5\n3,30\n")
    bad = repo.commit("negative value")
    message = d.settle()
    assert "blocked" in message
    assert d.query("select v2 from analytics.b order by id") == [(20,), (40,), (60,)]
    status = d.query("select status, commit from gitops_meta.ref_status where env = 'main'")[0]
    assert status == ("blocked", bad)
    failed = d.query("select check_name, failed_rows from gitops_meta.audits where not passed")
    assert ("v__ge", 1) in failed

    # the next good commit publishes
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,5\n3,30\n")
    good = repo.commit("fixed")
    d.settle()
    assert d.query("select commit from gitops_meta.environments where env = 'main'")[0][0] == good
    assert d.query("select v2 from analytics.b order by id") == [(20,), (10,), (60,)]

    # deleting the branch drops its schema
    repo.git("branch", "-q", "-D", "feature/x")
    d.settle()
    assert objects(d.ws, schema) == {}
    assert d.query("select count(*) from gitops_meta.environments where env = 'feature/x'") == [(0,)]


def test_invalid_commit_is_not_built_and_keeps_serving(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    repo.replace("project.yml", "from a", "from a_typo")
    repo.commit("typo")
    runs = len(d.runs)
    message = d.settle()
    assert "invalid" in message and "a_typo" in message
    assert len(d.runs) == runs
    assert d.query("select count(*) from analytics.b") == [(3,)]
    # the asset graph says so on every asset of the environment (it shows the valid parent)
    description = d.definitions().get_assets_def(dg.AssetKey(["analytics", "b"])).descriptions_by_key
    text = description[dg.AssetKey(["analytics", "b"])]
    assert "is invalid: " in text and "a_typo" in text and "the assets shown are of" in text


def test_a_blocked_head_is_labelled_on_its_assets(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,-5\n3,30\n")  # a.v >= 0 fails
    repo.commit("negative")
    d.settle()
    key = dg.AssetKey(["analytics", "a"])
    text = d.definitions().get_assets_def(key).descriptions_by_key[key]
    assert text.startswith("⚠ head ") and "is blocked: blocking checks failed: a.v__ge" in text
    run = instance.get_run_by_id(d.runs[-1].run_id)  # a successful run that says what blocked it
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["gitops/outcome"] == "blocked: a.v__ge"


# a fact with a relationship to a dimension that is neither its upstream nor its downstream, and an
# expression check over another model: both run after the model they read, in the same run
CROSS_MODEL = {
    "gitops_data.yaml": "name: t\n",
    "seeds/orders.csv": "id,customer_id,amount\n1,1,10\n2,2,20\n3,3,30\n",
    "seeds/people.csv": "id,cap\n1,100\n2,100\n3,100\n",
    "project.yml": """
seeds:
  - {name: orders, path: seeds/orders.csv}
  - {name: people, path: seeds/people.csv}
models:
  - name: fct_orders
    sql: select id, customer_id, amount from orders
    checks:
      - relationship: {column: customer_id, to: zz_dim_customer, field: customer_id}
      - expression: "amount <= (select max(cap) from zz_dim_customer)"
  - name: zz_dim_customer
    sql: select id as customer_id, cap from people
""",
}


def test_cross_model_checks_publish_in_one_tick_and_block_on_a_violation(make_repo, warehouse, instance):
    repo = make_repo(CROSS_MODEL)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    assert len(d.runs) == 1 and d.runs[0].error is None
    assert d.query("select commit from gitops_meta.environments where env = 'main'") == [(repo.head(),)]
    audits = dict(d.query("select check_name, passed from gitops_meta.audits"))
    assert audits == {"relationship": True, "expression": True}

    # the dimension loses customer 3: the fact's build is reused, its relationship re-runs and blocks
    repo.write("seeds/people.csv", "id,cap\n1,100\n2,100\n")
    repo.commit("customer 3 gone")
    message = d.settle()
    assert "blocked" in message and "fct_orders.relationship (1 rows)" in message
    assert d.query("select count(*) from analytics.zz_dim_customer") == [(3,)]  # last good state served


def test_a_run_started_from_the_ui_builds_the_head_and_concludes_it(make_repo, warehouse, instance):
    import dagster as dg

    repo = make_repo(SMALL_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    before = _view_builds(d, "main")
    repo.replace("project.yml", "v * 2 as v2", "v * 7 as v2")
    head = repo.commit("b times 7")
    # "Materialize all" on the production group, as a user clicks it: no gitops tags on the run
    assert d.materialize_from_ui(dg.AssetSelection.groups("analytics"))
    # the run's last step concluded its plan: published, the outcome on the run, no tick needed
    assert d.query("select commit from gitops_meta.environments where env = 'main'") == [(head,)]
    ui_run = instance.get_runs(limit=1)[0]
    assert "gitops/plan" not in ui_run.tags and ui_run.tags.get("gitops/outcome") == "published"
    assert d.tick()[1] == []  # the sensor finds nothing left to do
    after = _view_builds(d, "main")
    assert d.query("select commit from gitops_meta.environments where env = 'main'") == [(head,)]
    assert after["a"] == before["a"] and after["nums"] == before["nums"]  # reused, not rebuilt
    assert after["b"] != before["b"] and d.query("select v2 from analytics.b order by id") == [
        (70,),
        (140,),
        (210,),
    ]


def test_a_partial_ui_run_is_completed_by_the_sensor_not_failed(make_repo, warehouse, instance):
    import dagster as dg

    repo = make_repo(SMALL_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    repo.replace("project.yml", "v * 2 as v2", "v * 7 as v2")
    head = repo.commit("b times 7")
    # only `b` is materialized: its downstream `c` is planned but not built by that run
    assert d.materialize_from_ui(dg.AssetSelection.assets(dg.AssetKey(["analytics", "b"])))
    d.settle()  # the sensor plans again for what is missing (c), builds it and publishes
    assert d.query("select commit from gitops_meta.environments where env = 'main'") == [(head,)]
    assert d.query("select n from analytics.c") == [(3,)]
    assert d.query("select status from gitops_meta.ref_status where env = 'main'") == [("published",)]


def test_models_a_branch_serves_from_production_show_as_materialized_in_its_group(
    make_repo, warehouse, instance
):
    import dagster as dg

    repo = make_repo(SMALL_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    repo.git("checkout", "-q", "-b", "feature/z")
    repo.replace("project.yml", "v * 2 as v2", "v * 9 as v2")
    repo.commit("b times 9")
    repo.git("checkout", "-q", "main")
    d.settle()
    schema = d.query("select schema_name from gitops_meta.environments where env = 'feature/z'")[0][0]
    served = _view_builds(d, "feature/z")
    for model in ("nums", "a", "b", "c"):  # nums and a reuse main's tables; b and c were built
        event = instance.get_latest_materialization_event(dg.AssetKey([schema, model]))
        assert event is not None, f"{schema}/{model} shows as never materialized"
        meta = event.asset_materialization.metadata
        assert meta["build_id"].value == served[model]
        assert meta["reused"].value == (model in ("nums", "a"))
