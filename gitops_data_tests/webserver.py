"""A real Dagster webserver over the code location, for the UI tests: started on a free port,
ready when it answers, stopped with its process group; and its GraphQL API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gitops_data.deployment.core import Deployment
from gitops_data_tests.test_deployment import _free_port

LOCATION = "gitops_data.orchestration.definitions"


@contextmanager
def dagster_webserver(ws: Deployment, log_dir: Path, start_seconds: float = 300) -> Iterator[int]:
    """The port of a webserver showing `ws`'s location; its output goes to log_dir/webserver.log."""
    port = _free_port()
    env = {**os.environ, "GITOPS_DATA_REPO": ws.repo, "GITOPS_DATA_WAREHOUSE": ws.warehouse}
    log = log_dir / "webserver.log"
    web = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-m",
            LOCATION,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + start_seconds  # a loaded machine takes its time to start it
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
                break
            except OSError:
                assert web.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(1)
        yield port
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        try:
            web.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait()


def graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)["data"]
