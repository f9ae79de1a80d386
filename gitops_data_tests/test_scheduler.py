"""Plan runs: which steps may run (the frontier, pure), independent builds at the same time on real
warehouses, one connection per sync, and a sync that gives the warehouse to another process that
asks for it."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

import dagster as dg
import pytest

from gitops_data import engines
from gitops_data.deployment.core import Deployment
from gitops_data.engines import open_warehouse, warehouse_turn
from gitops_data.orchestration import plan_job
from gitops_data.plan.frontier import Frontier
from gitops_data_tests.conftest import query, sync


@pytest.fixture
def warehouse(any_warehouse) -> str:
    return any_warehouse


SLOW_MODEL = """
import time

import polars as pl


def {name}(seed: pl.LazyFrame) -> pl.DataFrame:
    started = time.time()
    time.sleep(2.0)  # long enough that a loaded machine still starts the other within it
    return pl.DataFrame({{"n": [seed.collect().height], "started": [started], "ended": [time.time()]}})
"""

PROJECT = {
    "gitops_data.yaml": "name: t\n",
    "seeds/seed.csv": "id\n1\n2\n",
    "models/slow.py": SLOW_MODEL.format(name="left") + SLOW_MODEL.format(name="right"),
    "project.yml": """
seeds:
  - name: seed
    path: seeds/seed.csv
models:
  - name: left
    python: models/slow.py:left
  - name: right
    python: models/slow.py:right
  - name: combined
    sql: select l.n + r.n as n from left l, right r
  - name: after_left
    sql: select n * 10 as n from left
""",
}


def _intervals(ws: Deployment) -> dict[str, tuple[float, float]]:
    return {m: query(ws, f"select started, ended from analytics.{m}")[0] for m in ("left", "right")}


@pytest.mark.parametrize("threads", [1, 2])
def test_independent_models_build_at_the_same_time(make_repo, warehouse, instance, monkeypatch, threads):
    monkeypatch.setenv("GITOPS_DATA_THREADS", str(threads))
    repo = make_repo(PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    (l0, l1), (r0, r1) = _intervals(ws).values()
    overlap = min(l1, r1) - max(l0, r0)
    if threads == 1:
        assert overlap < 0, "one thread: one build after the other"
    else:
        assert overlap > 0, "two threads: left and right (independent) were built at the same time"
    assert query(ws, "select n from analytics.combined") == [(4,)]
    assert query(ws, "select n from analytics.after_left") == [(20,)]


def test_a_failed_build_skips_its_downstream_while_independent_steps_go_on(
    make_repo, warehouse, instance, monkeypatch
):
    monkeypatch.setenv("GITOPS_DATA_THREADS", "2")
    files = dict(PROJECT)
    failing = "\n\ndef right(seed):\n    raise ValueError('no')\n"
    files["models/slow.py"] = SLOW_MODEL.format(name="left") + failing
    repo = make_repo(files)
    ws = Deployment(str(repo.path), warehouse)
    with pytest.raises(Exception, match="no"):
        sync(ws, "main", instance)
    built = {r[0] for r in query(ws, "select model from gitops_meta.builds")}
    assert built == {"seed", "left", "after_left"}  # `combined` reads `right`: skipped


def test_checks_reading_other_models_still_run_when_one_models_build_failed(
    make_repo, warehouse, instance, monkeypatch
):
    monkeypatch.setenv("GITOPS_DATA_THREADS", "1")
    files = dict(PROJECT)
    files["models/slow.py"] = (
        SLOW_MODEL.format(name="left") + "\n\ndef right(seed):\n    raise ValueError('no')\n"
    )
    checked = "    checks: [{relationship: {column: n, to: left, field: n}}]\n"
    files["project.yml"] = (
        files["project.yml"].replace(
            "    python: models/slow.py:right\n", "    python: models/slow.py:right\n" + checked
        )
        + "  - name: z_good\n    sql: select n from left\n"
        + checked
    )
    repo = make_repo(files)
    ws = Deployment(str(repo.path), warehouse)
    with pytest.raises(Exception, match="no"):
        sync(ws, "main", instance)
    audited = query(
        ws, "select b.model, a.passed from gitops_meta.audits a join gitops_meta.builds b using (build_id)"
    )
    # `right` has no build to audit; the check of `z_good` (after it in the plan) that reads `left` ran
    assert ("z_good", True) in [(m, bool(p)) for m, p in audited]


def test_a_sync_connects_to_the_warehouse_once(make_repo, warehouse, instance, monkeypatch):
    repo = make_repo(PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    connects = []
    real = engines._connect
    monkeypatch.setattr(engines, "_connect", lambda *a: connects.append(a) or real(*a))
    sync(ws, "main", instance)
    assert len(connects) == 1, "plan, run (with its sibling connections), gate and publish share one"


def test_reports_are_made_on_their_own_thread_in_order_and_all_before_the_run_ends(
    make_repo, warehouse, instance, monkeypatch
):
    """Slow reports (Dagster's event writes) are made on their own thread and none is lost."""
    made: list[tuple[str, str, str]] = []
    real = plan_job._reporter

    def slow_reporter(context, plan, warehouse):
        report = real(context, plan, warehouse)

        def slower(event):
            time.sleep(0.1)
            report(event)
            made.append((threading.current_thread().name, event.kind, event.step.name))

        return slower

    monkeypatch.setattr(plan_job, "_reporter", slow_reporter)
    repo = make_repo(PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    result = sync(ws, "main", instance)
    assert {t for t, _, _ in made} == {"gitops-report_0"}
    built = [name for _, kind, name in made if kind == "built"]
    assert sorted(built) == sorted(result.plan.models)
    assert built.index("seed") < built.index("left") < built.index("combined")  # the order steps ended
    materialized = [
        e
        for e in instance.all_logs(result.run_id)
        if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    ]
    assert len(materialized) == len(built)


def test_a_report_that_fails_stops_the_run_before_more_steps_start(
    make_repo, warehouse, instance, monkeypatch
):
    monkeypatch.setenv("GITOPS_DATA_THREADS", "2")

    def failing_reporter(context, plan, warehouse):
        def report(event):
            raise RuntimeError("the event store is down")

        return report

    monkeypatch.setattr(plan_job, "_reporter", failing_reporter)
    repo = make_repo(PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    with pytest.raises(Exception, match="the event store is down"):
        sync(ws, "main", instance)
    built = {r[0] for r in query(ws, "select model from gitops_meta.builds")}
    assert "seed" in built and not built & {"combined", "after_left"}  # left and right were running
    assert query(ws, "select count(*) from gitops_meta.publishes")[0][0] == 0


# -- giving way ----------------------------------------------------------------------------------------


def _hold_turn(location: str, seconds: float, held, uses) -> None:
    """Another process's long plan run: a turn, used over and over for `seconds`."""
    with warehouse_turn(location) as turn:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with open_warehouse(location) as engine:
                engine.fetchall("select 1")
            held.set()
            time.sleep(0.02)
        uses.value = turn.taken


def test_a_turn_gives_way_to_a_process_that_asks(warehouse, monkeypatch):
    with open_warehouse(warehouse) as engine:  # create the database
        engine.fetchall("select 1")
    ctx = mp.get_context("spawn")
    held, taken = ctx.Event(), ctx.Value("i", 0)
    holder = ctx.Process(target=_hold_turn, args=(warehouse, 6.0, held, taken))
    holder.start()
    try:
        assert held.wait(60)
        started = time.monotonic()
        with open_warehouse(warehouse, timeout=30) as engine:
            engine.fetchall("select 1")
        waited = time.monotonic() - started
        assert holder.is_alive(), "the holder was still in its turn"
        assert waited < 4.5, f"waited {waited:.1f}s: the turn gave way after about a second"
    finally:
        holder.join(60)
    assert taken.value >= 2, "the holder connected again after giving way"


def test_the_frontier_runs_independent_steps_together_and_skips_downstream_of_a_stop(
    make_repo, warehouse, instance
):
    repo = make_repo(PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    sha = repo.head()
    plan = ws.plan(sha, ws.environment("main", ws.project(sha).settings))
    frontier = Frontier(plan)
    ready, skipped = frontier.take(10)
    assert [s.name for s in ready] == ["seed"] and not skipped
    assert frontier.take(10) == ([], [])  # the rest read `seed`
    frontier.finish("seed")
    ready, _ = frontier.take(1)
    assert [s.name for s in ready] == ["left"]  # the limit
    ready, _ = frontier.take(10)
    assert [s.name for s in ready] == ["right"]
    frontier.finish("right", stopped=True)
    ready, skipped = frontier.take(10)
    assert ready == [] and [(s.step.name, s.upstream) for s in skipped] == [("combined", ("right",))]
    frontier.finish("left")
    ready, skipped = frontier.take(10)
    assert [s.name for s in ready] == ["after_left"] and not skipped
    frontier.finish("after_left")
    assert frontier.done and frontier.stopped == {"right", "combined"}
