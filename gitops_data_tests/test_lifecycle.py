"""A commit's lifecycle with entry points together (not one by one), on a real Dagster instance and
a real warehouse (both engines): one claim per (environment, commit), a killed run released, holds
binding every trigger, and every publish recorded in Dagster whoever made it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import dagster as dg
import pytest

from gitops_data.deployment import operations as ops
from gitops_data.deployment.apply import apply
from gitops_data.deployment.core import Deployment
from gitops_data.deployment.lifecycle import REQUEST_GRACE, Liveness, Owner, liveness
from gitops_data.orchestration.run import InProcessExecutor, execute_run_request, record_publish
from gitops_data.plan import PlanState, Status, Trigger
from gitops_data.warehouse.catalog import PlanRow, now
from gitops_data.warehouse.publish import republish
from gitops_data_tests.conftest import SMALL_PROJECT
from gitops_data_tests.drive import Driver

SLOW_MODEL = """
import json
import os
import time

import polars as pl


def slow(a: pl.LazyFrame) -> pl.DataFrame:
    if os.environ.get("GITOPS_TEST_SLOW"):
        with open(os.environ["GITOPS_TEST_SLOW"], "w") as f:
            f.write("building")
        time.sleep(600)
    return a.collect()
"""

SLOW_PROJECT = {
    **SMALL_PROJECT,
    "models/slow.py": SLOW_MODEL,
    "project.yml": SMALL_PROJECT["project.yml"]
    + """  - name: slow
    python: models/slow.py:slow
""",
}


@pytest.fixture
def warehouse(any_warehouse) -> str:
    """Both engines."""
    return any_warehouse


def _served(d: Driver, env: str = "main") -> str | None:
    rows = d.query(f"select commit from gitops_meta.environments where env = '{env}'")
    return rows[0][0] if rows else None


def _builds_per_model(d: Driver, commit: str) -> dict[str, int]:
    return dict(
        d.query(f"select model, count(*) from gitops_meta.builds where commit = '{commit}' group by model")
    )


def _plans(d: Driver, commit: str) -> list[tuple]:
    return d.query(
        f"select trigger, status, outcome, reason from gitops_meta.plans where commit = '{commit}' "
        "order by created_at"
    )


@pytest.mark.slow
def test_a_killed_build_is_released_and_the_sensor_publishes_in_one_tick(
    tmp_path, make_repo, warehouse, instance
):
    repo = make_repo(SLOW_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    repo.replace("project.yml", "v * 2 as v2", "v * 4 as v2")
    repo.write("models/slow.py", SLOW_MODEL + "\n# changed\n")
    head = repo.commit("b and slow change")

    home = tmp_path / "cli_home"
    home.mkdir()
    mark = tmp_path / "slow_model_started"
    env = {**os.environ, "DAGSTER_HOME": str(home), "GITOPS_TEST_SLOW": str(mark)}
    cmd = [
        sys.executable,
        "-m",
        "gitops_data.cli",
        "--repo",
        str(repo.path),
        "--warehouse",
        warehouse,
        "build",
    ]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not mark.exists():  # mid-run: its run is building the slow model (and holds the warehouse)
            assert child.poll() is None and time.monotonic() < deadline, "the build did not start"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    with d.ws.catalog() as cat:  # the killed run still claims main@head
        row = cat.active_plan("main", head)
    assert row is not None and row.trigger == Trigger.BUILD and row.run_id is not None

    # tick 1: the killed run's claim is released and the commit planned again (b is reused)
    _, requests, message = d.tick()
    assert len(requests) == 1, message
    assert (Trigger.BUILD, PlanState.RELEASED) == tuple(_plans(d, head)[0][:2])
    assert "was killed" in _plans(d, head)[0][3]
    run = execute_run_request(d.definitions(), requests[0], instance)  # the build (its run publishes)
    assert run.error is None and _served(d) == head
    _, requests, message = d.tick()  # tick 2: nothing left to do
    assert requests == [] and _served(d) == head
    assert _builds_per_model(d, head) == {"b": 1, "c": 1, "slow": 1}  # what the killed run built is reused


def test_a_rollback_holds_when_a_schedule_fires(make_repo, warehouse, instance):
    files = dict(SMALL_PROJECT)
    files["ops.yml"] = 'schedules:\n  - name: hourly_b\n    cron: "0 * * * *"\n    select: [b]\n'
    repo = make_repo(files)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    first = d.query("select publish_id from gitops_meta.environments where env = 'main'")[0][0]
    repo.replace("project.yml", "v * 2 as v2", "v * 5 as v2")
    head = repo.commit("five")
    d.settle()
    assert d.query("select v2 from analytics.b order by id") == [(50,), (100,), (150,)]
    schedule = d.definitions().get_schedule_def("hourly_b")
    with dg.build_schedule_context(instance=instance) as ctx:  # a refresh requested before the rollback
        under_way = schedule.evaluate_tick(ctx).run_requests[0]
    with d.ws.catalog() as cat:  # what `gitops-data rollback` does
        republish(cat, "main", first, "gitops_internal", hold_head=head)
    run = execute_run_request(d.definitions(), under_way, instance)  # its run concludes: held
    assert run.error is None
    assert instance.get_run_by_id(run.run_id).tags["gitops/outcome"] == "rolled_back"
    assert d.query("select v2 from analytics.b order by id") == [(20,), (40,), (60,)]

    with dg.build_schedule_context(instance=instance) as ctx:
        tick = schedule.evaluate_tick(ctx)
    assert not tick.run_requests and "rolled_back" in (tick.skip_message or "")
    d.settle()  # the sensor holds it too
    assert d.query("select v2 from analytics.b order by id") == [(20,), (40,), (60,)]  # still rolled back
    assert d.query("select status from gitops_meta.ref_status where env = 'main'") == [("rolled_back",)]


def test_cli_sync_and_the_sensor_on_one_commit_build_it_once(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    d = Driver(ws, instance)
    d.settle()
    repo.replace("project.yml", "v * 2 as v2", "v * 7 as v2")
    head = repo.commit("seven")

    # the sensor claims first; `sync` joins its run instead of building again, and reports its outcome
    _, requests, _ = d.tick()
    assert len(requests) == 1
    got: dict = {}
    syncing = threading.Thread(
        target=lambda: got.update(r=apply(ws, "main", InProcessExecutor(ws, instance)))
    )
    syncing.start()
    time.sleep(1.5)  # it is waiting for the sensor's run
    assert syncing.is_alive()
    run = execute_run_request(d.definitions(), requests[0], instance)
    syncing.join(120)
    result = got["r"]
    assert result.status == Status.PUBLISHED and result.joined and "git_refs sensor" in result.joined
    assert result.run_id == run.run_id and _served(d) == head
    assert _builds_per_model(d, head) == {"b": 1, "c": 1}
    outcome = instance.get_run_by_id(run.run_id).tags.get("gitops/outcome")
    assert outcome == "published"
    assert d.tick()[1] == []  # and the sensor has nothing left to do

    # `sync` claims first: the sensor joins it (no second run), and its tick says so
    repo.replace("project.yml", "v * 7 as v2", "v * 8 as v2")
    head2 = repo.commit("eight")
    seen: dict = {}

    class Watching(InProcessExecutor):
        def execute(self, plan, plan_id, trigger):
            seen["tick"] = d.tick()  # the sensor ticks while the CLI's run is about to execute
            return super().execute(plan, plan_id, trigger)

    result = apply(ws, "main", Watching(ws, instance))
    assert result.status == Status.PUBLISHED and _served(d) == head2
    _, requests, message = seen["tick"]
    assert requests == [] and "`gitops-data sync`'s run" in message
    assert _builds_per_model(d, head2) == {"b": 1, "c": 1}
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"gitops/commit": head2}))
    assert [r.tags.get("gitops/outcome") for r in runs] == ["published"]  # one run, tagged by itself


def ws_history(ws: Deployment) -> list[dict]:
    return ops.history(ws, "main", 100)[1]


def _latest_materialization_commit(instance, key: list[str]) -> str | None:
    entry = instance.get_latest_materialization_event(dg.AssetKey(key))
    return entry.asset_materialization.metadata["commit"].value if entry else None


def test_a_cli_merge_and_revert_appear_in_the_assets_history(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    runner = InProcessExecutor(ws, instance)
    apply(ws, "main", runner).raise_for_status()
    repo.git("checkout", "-q", "-b", "feature")
    repo.replace("project.yml", "v * 2 as v2", "v * 3 as v2")
    repo.commit("triple")
    apply(ws, "feature", runner).raise_for_status()
    branch_group = ws.environment("feature").schema
    # the branch serves production's a and nums (zero copy): its group shows them materialized
    assert _latest_materialization_commit(instance, [branch_group, "a"]) is not None

    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    merge = repo.head()
    runs = len(instance.get_runs())
    assert apply(ws, "main", runner).status == Status.PUBLISHED  # nothing to build: no run
    assert len(instance.get_runs()) == runs
    assert _latest_materialization_commit(instance, ["analytics", "b"]) == merge

    repo.git("revert", "--no-edit", "-m", "1", "HEAD")
    revert = repo.head()
    assert apply(ws, "main", runner).status == Status.PUBLISHED
    assert _latest_materialization_commit(instance, ["analytics", "b"]) == revert
    assert _latest_materialization_commit(instance, ["analytics", "c"]) == revert

    # `gitops-data rollback` to the merge's publish: the asset says it serves the merge's build again
    merge_publish = next(r for r in ws_history(ws) if r["commit"] == merge)["publish_id"]
    done = ops.rollback(ws, "main", merge_publish)
    record_publish(instance, ws, done.record, f"rolled back to publish {merge_publish}")
    entry = instance.get_latest_materialization_event(dg.AssetKey(["analytics", "b"]))
    assert entry.asset_materialization.metadata["commit"].value == merge
    assert "rolled back" in entry.asset_materialization.description


def test_a_run_that_builds_every_model_has_no_served_builds_to_report(make_repo, warehouse, instance):
    from gitops_data.orchestration.materializations import served_reused

    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    first = apply(ws, "main", InProcessExecutor(ws, instance)).raise_for_status()
    assert first.plan is not None and first.plan.to_build

    class NoDagster:  # every build is the run's own, reported as it was made: Dagster is not asked
        def __getattr__(self, name):
            raise AssertionError(f"served_reused asked Dagster for {name}")

    assert served_reused(first, NoDagster(), warehouse) == []  # type: ignore[arg-type]
    repo.git("checkout", "-q", "-b", "feature")
    repo.replace("project.yml", "v * 2 as v2", "v * 3 as v2")
    repo.commit("triple")
    apply(ws, "feature", InProcessExecutor(ws, instance)).raise_for_status()
    # a run that reuses builds still reports them: the branch serves production's `a`
    assert _latest_materialization_commit(instance, [ws.environment("feature").schema, "a"]) is not None


def test_after_a_blocked_commit_is_reverted_no_production_asset_shows_a_failed_check(
    make_repo, warehouse, instance
):
    repo = make_repo(SMALL_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,-5\n3,30\n")  # a.v >= 0 fails
    repo.commit("negative")
    assert "blocked" in d.settle()
    key = dg.AssetCheckKey(dg.AssetKey(["analytics", "a"]), "v__ge")
    assert (
        instance.get_latest_asset_check_evaluation_record(key).event.dagster_event.event_specific_data.passed
        is False
    )

    repo.git("revert", "--no-edit", "HEAD")
    revert = repo.head()
    d.settle()
    assert _served(d) == revert
    assert _failed_production_checks(d, instance) == []
    assert _latest_materialization_commit(instance, ["analytics", "a"]) == revert


def _failed_production_checks(d: Driver, instance) -> list[str]:
    defs = d.definitions()
    check_keys = [k for ch in defs.asset_checks or [] for k in ch.check_keys] + [
        k for a in defs.assets for k in getattr(a, "check_keys", [])
    ]
    failed = []
    for ck in (k for k in check_keys if k.asset_key.path[0] == "analytics"):
        record = instance.get_latest_asset_check_evaluation_record(ck)
        if record is not None and not record.event.dagster_event.event_specific_data.passed:
            failed.append(ck.to_user_string())
    return failed


def test_a_rollback_past_a_blocked_commit_reports_the_served_builds_checks(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    d = Driver(ws, instance)
    d.settle()
    first = repo.head()
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,20\n3,40\n")
    repo.commit("more")
    d.settle()
    repo.write("seeds/nums.csv", "id,v\n1,10\n2,-5\n3,30\n")  # a.v >= 0 fails
    repo.commit("negative")
    assert "blocked" in d.settle()
    assert "analytics.a:v__ge" in " ".join(_failed_production_checks(d, instance)).replace("/", ".")

    first_publish = next(r for r in ws_history(ws) if r["commit"] == first)["publish_id"]
    done = ops.rollback(ws, "main", first_publish)
    assert "a" in done.record.changed
    record_publish(instance, ws, done.record, f"rolled back to publish {first_publish}")
    assert _failed_production_checks(d, instance) == []


def test_settings_name_the_branches_that_get_environments(make_repo, warehouse, instance):
    files = {**SMALL_PROJECT, "gitops_data.yaml": 'name: t\nbranches: ["feature/*", "release-*"]\n'}
    repo = make_repo(files)
    for branch in ("feature/a", "wip/b", "release-1"):
        repo.git("branch", branch)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    envs = {e for (e,) in d.query("select env from gitops_meta.environments")}
    assert envs == {"main", "feature/a", "release-1"}  # wip/b matches no pattern: the sensor leaves it


def _row(state: PlanState, owner: str | None, run_id: str | None, age_s: float = 0) -> PlanRow:
    created = now() - timedelta(seconds=age_s)
    return PlanRow("p", "main", "c", Trigger.GIT, state, None, "", owner, run_id, None, created)


def test_a_claims_run_is_alive_waiting_finished_or_dead():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead, alive = str(Owner(socket.gethostname(), gone.pid, "1")), str(Owner.current())
    elsewhere = str(Owner("another-host", 1, "1"))
    cases = [
        (_row(PlanState.OPEN, dead, "r1"), "active", Liveness.DEAD),  # killed: Dagster still says STARTED
        (_row(PlanState.OPEN, alive, "r1"), "active", Liveness.ALIVE),
        (_row(PlanState.OPEN, alive, None), None, Liveness.ALIVE),  # claimed, its run not made yet
        (_row(PlanState.OPEN, elsewhere, "r1"), "active", Liveness.ALIVE),  # another host: Dagster says
        (_row(PlanState.OPEN, elsewhere, "r1"), "failure", Liveness.FINISHED),
        (_row(PlanState.OPEN, elsewhere, "r1"), None, Liveness.DEAD),  # its run is gone from Dagster
        (_row(PlanState.OPEN, None, None), None, Liveness.WAITING),  # requested, within the grace
        (_row(PlanState.OPEN, None, None, age_s=REQUEST_GRACE.total_seconds() + 1), None, Liveness.DEAD),
        (_row(PlanState.CONCLUDING, alive, "r1"), "success", Liveness.ALIVE),
        (_row(PlanState.CONCLUDING, dead, "r1"), "success", Liveness.DEAD),
    ]
    for row, run, expected in cases:
        got, why = liveness(row, run)
        assert got == expected, (row, run, why)
        assert ("killed" in why) == (expected == Liveness.DEAD and row.owner == dead)


def test_a_stale_code_location_does_not_call_a_valid_head_invalid(
    make_repo, warehouse, instance, monkeypatch
):
    monkeypatch.setenv("GITOPS_DATA_DAGSTER_WEBSERVER", "off")
    repo = make_repo(SMALL_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    loaded = d.definitions()  # the location as loaded now; the branch moves on after it
    repo.replace("project.yml", "v * 2 as v2", "v * 9 as v2")
    head = repo.commit("nine")
    for _ in range(3):  # the stale location's sensor builds and publishes the new head all the same
        ctx = dg.build_sensor_context(instance=instance, cursor=d.cursor, definitions=loaded)
        result = loaded.get_sensor_def("git_refs").evaluate_tick(ctx)
        d.cursor = result.cursor if result.cursor is not None else ctx.cursor
        for request in result.run_requests or []:
            execute_run_request(loaded, request, instance)
    assert _served(d) == head
    cursor = json.loads(d.cursor)
    assert cursor["reloaded_for"]["heads"] == {"main": head}  # a reload was asked for the new head
    assert cursor["reloaded_for"]["notes"] == {}  # valid and published: no note calls it invalid


def test_a_run_that_died_before_concluding_is_released_then_planned_again(
    make_repo, warehouse, instance, monkeypatch
):
    import gitops_data.orchestration.plan_job as plan_job

    repo = make_repo(SMALL_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    real = plan_job.run_plan

    def crash(*args, **kwargs):
        raise RuntimeError("the run worker lost its process")

    monkeypatch.setattr(plan_job, "run_plan", crash)
    _, requests, _ = d.tick()
    assert execute_run_request(d.definitions(), requests[0], instance).error  # failed, plan left open
    _, requests, message = d.tick()  # released (its run died) and requested again
    assert len(requests) == 1, message
    assert [p[:2] for p in _plans(d, repo.head())] == [
        (Trigger.GIT, PlanState.RELEASED),
        (Trigger.GIT, PlanState.OPEN),
    ]
    monkeypatch.setattr(plan_job, "run_plan", real)
    assert execute_run_request(d.definitions(), requests[0], instance).error is None
    assert _served(d) == repo.head()
