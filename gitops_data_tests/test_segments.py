"""Segmented builds: snapshots (SCD-2) and incremental models, history without copies, under WAP."""

from __future__ import annotations

import pytest

from gitops_data.deployment.core import Deployment
from gitops_data.errors import PublishBlocked
from gitops_data.warehouse.publish import republish
from gitops_data_tests.conftest import objects, sync
from gitops_data_tests.conftest import query as _q


@pytest.fixture
def warehouse(any_warehouse) -> str:
    """Both engines (the conformance suite)."""
    return any_warehouse


def _events(ids: range, negative: set[int] = frozenset()) -> str:
    return "id,amount\n" + "".join(f"{i},{-i if i in negative else i}\n" for i in ids)


INCREMENTAL = {
    "gitops_data.yaml": "name: inc\n",
    "data/events.csv": _events(range(1, 101)),
    "p.yml": """
sources:
  - name: events
    path: data/events.csv
models:
  - name: events_inc
    sql: select id, amount from events
    incremental: {column: id, compact_after: 3}
    columns:
      amount: {checks: [{ge: 0}]}
  - name: total
    sql: select count(*) as n, sum(amount) as s from events_inc
""",
}


def _segments(ws: Deployment) -> list[int]:
    """Row counts of the segments of the build that main serves for events_inc."""
    rows = _q(
        ws,
        """select s.table_name from gitops_meta.segments s join gitops_meta.env_views v
           on v.build_id = s.build_id where v.env = 'main' and v.model = 'events_inc' order by s.seq""",
    )
    return [_q(ws, f'select count(*) from gitops_internal."{t}"')[0][0] for (t,) in rows]


def test_incremental_appends_only_new_rows_and_rolls_back_exactly(make_repo, warehouse, instance):
    repo = make_repo(INCREMENTAL)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    assert _segments(ws) == [100]
    first_publish = _q(ws, "select publish_id from gitops_meta.environments where env = 'main'")[0][0]
    snapshot_1 = _q(ws, "select * from analytics.events_inc order by id")

    repo.write("data/events.csv", _events(range(1, 151)))
    c2 = repo.commit("50 new events")
    plan = ws.plan(c2, ws.environment("main", ws.project(c2).settings))
    assert (
        plan.models["events_inc"].mode == "append" and "appends a segment" in plan.models["events_inc"].reason
    )
    sync(ws, "main", instance)
    assert _segments(ws) == [100, 50]  # only the new rows were written
    assert _q(ws, "select * from analytics.total") == [(150, sum(range(1, 151)))]

    # a bad increment is blocked by checks; consumers keep the previous data
    repo.write("data/events.csv", _events(range(1, 171), negative={160}))
    repo.commit("bad batch")
    with pytest.raises(PublishBlocked):
        sync(ws, "main", instance)
    assert _q(ws, "select count(*) from analytics.events_inc") == [(150,)]

    repo.write("data/events.csv", _events(range(1, 181)))
    repo.commit("fixed batch")
    sync(ws, "main", instance)
    assert _q(ws, "select * from analytics.total") == [(180, sum(range(1, 181)))]
    assert _segments(ws) == [100, 50, 30]

    # a fourth run goes past compact_after: one compacted table, identical results
    repo.write("data/events.csv", _events(range(1, 201)))
    repo.commit("more")
    sync(ws, "main", instance)
    assert _segments(ws) == [200]
    assert _q(ws, "select * from analytics.events_inc order by id") == [(i, i) for i in range(1, 201)]

    # rollback to the first publish: exactly its data, and nothing copied
    tables_before = len(objects(ws, "gitops_internal"))
    with ws.catalog() as cat:
        republish(cat, "main", first_publish, "gitops_internal")
    assert _q(ws, "select * from analytics.events_inc order by id") == snapshot_1
    assert _q(ws, "select * from analytics.total") == [(100, sum(range(1, 101)))]
    assert len(objects(ws, "gitops_internal")) == tables_before


def test_git_revert_of_an_incremental_input_is_exact_and_builds_nothing(make_repo, warehouse, instance):
    repo = make_repo(INCREMENTAL)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    before = _q(ws, "select * from analytics.total")
    repo.write("data/events.csv", _events(range(1, 121)))
    repo.commit("20 more")
    sync(ws, "main", instance)
    builds = _q(ws, "select count(*) from gitops_meta.builds")[0][0]
    repo.git("revert", "--no-edit", "HEAD")
    result = sync(ws, "main", instance)
    assert result.run_id is None  # no Dagster run: views flipped to retained builds
    assert _q(ws, "select count(*) from gitops_meta.builds")[0][0] == builds
    assert _q(ws, "select * from analytics.total") == before


def test_forward_only_change_keeps_history(make_repo, warehouse, instance):
    files = dict(INCREMENTAL)
    files["p.yml"] = files["p.yml"].replace(
        "incremental: {column: id, compact_after: 3}", "incremental: {column: id, forward_only: true}"
    )
    repo = make_repo(files)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    repo.replace("p.yml", "select id, amount from events", "select id, amount * 2 as amount from events")
    repo.write("data/events.csv", _events(range(1, 111)))
    sha = repo.commit("double from now on")
    plan = ws.plan(sha, ws.environment("main", ws.project(sha).settings))
    assert plan.models["events_inc"].mode == "forward_only"
    sync(ws, "main", instance)
    rows = dict(_q(ws, "select id, amount from analytics.events_inc"))
    assert rows[100] == 100 and rows[101] == 202  # old history kept, new rows use the new SQL


SNAPSHOT = {
    "gitops_data.yaml": "name: snap\n",
    "data/people.csv": "id,name,city\n1,ann,oslo\n2,bob,rome\n",
    "p.yml": """
sources:
  - name: people
    path: data/people.csv
snapshots:
  - name: people_history
    source: people
    unique_key: id
    strategy: check
    check_cols: [name, city]
""",
}


def test_snapshot_history_over_four_commits(make_repo, warehouse, instance):
    repo = make_repo(SNAPSHOT)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    repo.write("data/people.csv", "id,name,city\n1,ann,paris\n3,cid,lima\n")  # update 1, delete 2, insert 3
    repo.commit("2")
    sync(ws, "main", instance)
    repo.write("data/people.csv", "id,name,city\n1,ann,paris\n3,cid,lima\n2,bob,rome\n")  # 2 comes back
    repo.commit("3")
    sync(ws, "main", instance)
    repo.write("data/people.csv", "id,name,city\n1,ann,paris\n3,cid,quito\n2,bob,rome\n")  # update 3
    repo.commit("4")
    sync(ws, "main", instance)
    hist = _q(
        ws,
        """select id, name, city, valid_to is null, is_current from analytics.people_history
                     order by id, valid_from""",
    )
    assert hist == [
        (1, "ann", "oslo", False, False),
        (1, "ann", "paris", True, True),
        (2, "bob", "rome", False, False),
        (2, "bob", "rome", True, True),
        (3, "cid", "lima", False, False),
        (3, "cid", "quito", True, True),
    ]
    closed = _q(
        ws,
        """select a.valid_to = b.valid_from from analytics.people_history a join analytics.people_history b
           on a.id = b.id and a.valid_to is not null and b.valid_from > a.valid_from and a.id in (1, 3)""",
    )
    assert closed and all(ok for (ok,) in closed)
    # the deletion of 2 closed its first version; it has no current row in between
    assert _q(ws, "select count(*) from analytics.people_history where id = 2 and is_current") == [(1,)]


def test_snapshot_twice_on_unchanged_input_adds_nothing(make_repo, warehouse, instance):
    repo = make_repo(SNAPSHOT)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    segments = _q(ws, "select count(*) from gitops_meta.segments")[0][0]
    sync(ws, "main", instance, rebuild=frozenset({"people_history"}))  # a scheduled run on the same input
    assert _q(ws, "select count(*) from analytics.people_history") == [(2,)]
    latest = _q(
        ws,
        """select count(*) from gitops_meta.segments where build_id = (select build_id
           from gitops_meta.builds where model = 'people_history' order by created_at desc limit 1)""",
    )
    assert latest == [(1,)]  # the new build reuses the one segment: no rows added
    assert _q(ws, "select count(*) from gitops_meta.segments")[0][0] == segments + 1


def test_rollback_holds_until_the_branch_moves(make_repo, warehouse, instance):
    repo = make_repo(INCREMENTAL)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    first = _q(ws, "select publish_id from gitops_meta.environments where env = 'main'")[0][0]
    repo.write("data/events.csv", _events(range(1, 121)))
    head = repo.commit("20 more")
    sync(ws, "main", instance)
    with ws.catalog() as cat:
        republish(cat, "main", first, "gitops_internal", hold_head=head)
    assert sync(ws, "main", instance).status == "rolled_back"  # the head is not re-published
    assert _q(ws, "select n from analytics.total") == [(100,)]
    repo.write("data/events.csv", _events(range(1, 131)))
    repo.commit("10 more")
    assert sync(ws, "main", instance).status == "published"  # the next commit publishes as usual
    assert _q(ws, "select n from analytics.total") == [(130,)]
