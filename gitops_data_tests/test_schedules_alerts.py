"""Schedules and alerts as code, through a real Dagster instance: a schedule tick rebuilds its
selection, the run-status sensor publishes the fresh builds; alerts reach a local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest

from gitops_data.alerts import AlertEvent, deliver
from gitops_data.deployment.core import Deployment
from gitops_data.orchestration.run import execute_run_request
from gitops_data.project.schema import AlertSpec
from gitops_data_tests.conftest import SMALL_PROJECT
from gitops_data_tests.drive import Driver


@pytest.fixture
def warehouse(any_warehouse) -> str:
    """Both engines (the conformance suite)."""
    return any_warehouse


@pytest.fixture
def webhook():
    """A local HTTP server that records JSON POSTs; `fail_first` requests get a 500."""
    received: list[dict] = []
    state = {"fail_first": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if state["fail_first"] > 0:
                state["fail_first"] -= 1
                self.send_response(500)
                self.end_headers()
                return
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received, state
    server.shutdown()


def _project_with(url: str) -> dict[str, str]:
    files = dict(SMALL_PROJECT)
    files["ops.yml"] = f"""
schedules:
  - name: nightly_b
    cron: "0 2 * * *"
    select: [b]
alerts:
  - name: team
    on: [published, blocked, check_failed]
    webhook: {url}
  - name: log
    on: [published]
    file: alerts/published.log
"""
    return files


def test_schedule_rebuilds_selection_and_publishes_with_alerts(
    make_repo, warehouse, instance, webhook, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a PostgreSQL warehouse keeps local state in ./.gitops_data
    url, received, _ = webhook
    repo = make_repo(_project_with(url))
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    assert [e["event"] for e in received] == ["published"]
    assert received[0]["env"] == "main" and received[0]["alert"] == "team"
    before = dict(d.query("select model, build_id from gitops_meta.env_views where env = 'main'"))

    defs = d.definitions()
    schedule = defs.get_schedule_def("nightly_b")
    with dg.build_schedule_context(instance=instance) as ctx:
        request = schedule.evaluate_tick(ctx).run_requests[0]
    with d.ws.catalog() as cat:
        plan = cat.plan(request.tags["gitops/plan"])
    assert plan.to_build == ["b", "c"]  # the selection and its downstream
    assert execute_run_request(defs, request, instance).error is None  # the run gates and publishes itself
    assert d.settle() == "no new commits on 1 ref(s)"  # and no open plan left for the sensor
    after = dict(d.query("select model, build_id from gitops_meta.env_views where env = 'main'"))
    assert after["a"] == before["a"] and after["nums"] == before["nums"]
    assert after["b"] != before["b"] and after["c"] != before["c"]
    assert [e["event"] for e in received] == ["published", "published"]
    log = Path(d.ws.state_dir) / "alerts" / "published.log"  # beside a DuckDB file, else in .gitops_data/
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["event"] == "published"


def test_blocked_commit_alerts(make_repo, warehouse, instance, webhook):
    url, received, _ = webhook
    repo = make_repo(_project_with(url))
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    repo.write("seeds/nums.csv", "id,v\n1,-1\n2,20\n3,30\n")
    repo.commit("bad")
    d.settle()
    events = [e["event"] for e in received]
    assert events == ["published", "blocked", "check_failed"]
    assert received[2]["details"]["checks"] == [{"model": "a", "check": "v__ge", "failed_rows": 1}]


def test_failing_webhook_is_retried_then_logged_never_raised(webhook, tmp_path):
    url, received, state = webhook
    alert = AlertSpec(name="x", on=["published"], webhook=url, retries=2)
    state["fail_first"] = 2
    assert deliver([alert], AlertEvent("published", "main", "abc", "m"), "p", str(tmp_path)) == []
    assert len(received) == 1  # two 500s, then delivered
    dead = AlertSpec(name="dead", on=["published"], webhook="http://127.0.0.1:9/nothing", retries=1)
    errors = deliver([dead], AlertEvent("published", "main", "abc", "m"), "p", str(tmp_path))
    assert len(errors) == 1 and "could not be delivered" in errors[0]


def test_run_failed_alert_only_for_broken_runs_not_for_blocked_ones(make_repo, warehouse, instance):
    from gitops_data.orchestration.sensors import only_blocked_by_checks

    repo = make_repo(SMALL_PROJECT)
    d = Driver(Deployment(str(repo.path), warehouse), instance)
    d.settle()
    repo.write("seeds/nums.csv", "id,v\n1,-1\n2,20\n3,30\n")  # breaks a blocking check
    repo.commit("bad data")
    d.settle()
    assert d.runs[-1].error is None  # blocked is not broken: the run succeeded, publishing was refused
    assert d.query("select status from gitops_meta.ref_status") == [("blocked",)]
    repo.replace(
        "project.yml", "select count(*) as n from b", "select count(*) as n, no_such_fn(n) as z from b"
    )
    repo.write("seeds/nums.csv", "id,v\n1,1\n2,20\n3,30\n")
    repo.commit("sql error")
    d.settle()
    assert "building 'c' (project.yml:" in d.runs[-1].error  # a real failure names the model's file
    assert not only_blocked_by_checks(instance, d.runs[-1].run_id)
