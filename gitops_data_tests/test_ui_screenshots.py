"""What a person sees in the Dagster UI, in a real webserver, taken in headless Chromium: a branch
whose reused models are all materialized, an invalid branch labelled, a blocked run labelled (a
successful run whose log says what blocked it, no stack trace). The GraphQL API is asserted; the
screenshots are written for people to look at (GITOPS_DATA_SCREENSHOTS, else the test's tmp dir).

Needs Debian's chromium (`.ci/run` installs it); skipped with the reason where it is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from gitops_data.deployment.core import Deployment
from gitops_data_tests.conftest import SMALL_PROJECT
from gitops_data_tests.drive import Driver
from gitops_data_tests.webserver import LOCATION, dagster_webserver, graphql

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshots(port: int, pages: dict[str, str], out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    paths = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic"],
        )
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        for name, path in pages.items():
            page.goto(f"http://127.0.0.1:{port}{path}")
            page.wait_for_load_state("networkidle")
            skip = page.get_by_role("button", name="Skip")  # Dagster's first-visit newsletter modal
            if skip.count():
                skip.first.click()
            page.wait_for_timeout(1500)
            paths.append(out / f"{name}.png")
            page.screenshot(path=str(paths[-1]))
        browser.close()
    return paths


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_ui_shows_reused_models_an_invalid_branch_and_a_blocked_run(tmp_path, make_repo, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("GITOPS_DATA_DAGSTER_WEBSERVER", "off")
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), str(tmp_path / "wh" / "warehouse.duckdb"))
    instance = dg.DagsterInstance.get()
    driver = Driver(ws, instance)
    driver.settle()
    for branch, change in {
        "feature/x": lambda: repo.replace(
            "project.yml", "count(*) as n from b", "count(*) as n, 1 as one from b"
        ),
        "typo": lambda: repo.replace("project.yml", "from a", "from a_typo"),
        "negative": lambda: repo.write("seeds/nums.csv", "id,v\n1,10\n2,-5\n3,30\n"),
    }.items():
        repo.git("checkout", "-q", "-b", branch)
        change()
        repo.commit(branch)
        repo.git("checkout", "-q", "main")
    driver.settle()
    groups = {ref: ws.environment(ref, ws.production_settings()).schema for ref in ("feature/x", "typo")}

    with dagster_webserver(ws, tmp_path) as port:
        nodes = graphql(
            port, "{ assetNodes { groupName description assetMaterializations(limit: 1) { runId } } }"
        )["assetNodes"]
        branch = [n for n in nodes if n["groupName"] == groups["feature/x"]]
        assert len(branch) == 4 and all(n["assetMaterializations"] for n in branch)  # 3 of them reused
        invalid = [n for n in nodes if n["groupName"] == groups["typo"]]
        assert invalid and all("is invalid" in (n["description"] or "") for n in invalid)
        runs = graphql(
            port, "{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }"
        )["runsOrError"]["results"]
        blocked = [r for r in runs if {"key": "gitops/outcome", "value": "blocked: a.v__ge"} in r["tags"]]
        assert len(blocked) == 1 and blocked[0]["status"] == "SUCCESS"

        out = Path(os.environ.get("GITOPS_DATA_SCREENSHOTS") or tmp_path / "screenshots")
        out.mkdir(parents=True, exist_ok=True)
        where = f"/locations/__repository__@{LOCATION}"
        shots = _screenshots(
            port,
            {
                "branch_reuses_production": f"{where}/asset-groups/{groups['feature/x']}/list",
                "invalid_branch": f"/assets/{groups['typo']}/b",
                "blocked_run": f"/runs/{blocked[0]['runId']}",
                "runs": "/runs",
            },
            out,
        )
        assert all(p.stat().st_size > 20_000 for p in shots)
        print("\nscreenshots:", *map(str, shots), sep="\n  ")
