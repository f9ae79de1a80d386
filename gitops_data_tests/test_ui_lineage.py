"""Column lineage where a person sees it: the asset page of the open-source Dagster UI, in a real
webserver, taken in headless Chromium, for the example shop and a dbt project. The OSS UI does not
draw `dagster/column_lineage`, so each materialization also carries a `column lineage` table (per
column: the upstream model.columns it is computed from); the GraphQL API is asserted, and the
screenshots are written for people to look at (GITOPS_DATA_SCREENSHOTS, else the test's tmp dir).

Needs Debian's chromium (`.ci/run` installs it); skipped with the reason where it is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from gitops_data.deployment.core import Deployment
from gitops_data_tests.drive import Driver
from gitops_data_tests.test_ui_screenshots import CHROMIUM
from gitops_data_tests.webserver import dagster_webserver, graphql

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

LINEAGE_QUERY = """{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { metadataEntries {
  label ... on MarkdownMetadataEntry { mdStr } } } } }"""


def _asset_page(port: int, path: str, shot: Path, shows: str) -> int:
    """Screenshot the asset page at `path` (the whole page); how many times it shows `shows`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic"],
        )
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(f"http://127.0.0.1:{port}{path}")
        page.wait_for_load_state("networkidle")
        skip = page.get_by_role("button", name="Skip")  # Dagster's first-visit newsletter modal
        try:
            skip.first.wait_for(timeout=5000)
            skip.first.click()
        except Exception:  # noqa: BLE001 - no modal this time
            pass
        found = page.get_by_text(shows, exact=True)
        found.first.wait_for(timeout=30_000)
        found.first.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(shot), full_page=True)
        count = found.count()
        browser.close()
    return count


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".gitops_data" not in p.parts and "target" not in p.parts
    }


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize(
    ("example", "model", "column", "sources"),
    [
        ("shop", "order_payments", "outstanding", "stg_orders.amount, stg_payments.amount"),
        ("jaffle_dbt", "orders", "amount", "stg_payments.amount"),  # through an ephemeral model
    ],
)
def test_the_asset_page_shows_where_each_column_comes_from(
    tmp_path, make_repo, monkeypatch, example, model, column, sources
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("GITOPS_DATA_DAGSTER_WEBSERVER", "off")
    repo = make_repo(_files(EXAMPLES / example))
    ws = Deployment(str(repo.path), str(tmp_path / "wh" / "warehouse.duckdb"))
    Driver(ws, dg.DagsterInstance.get()).settle()
    schema = ws.environment("main", ws.production_settings()).schema

    with dagster_webserver(ws, tmp_path) as port:
        nodes = {tuple(n["assetKey"]["path"]): n for n in graphql(port, LINEAGE_QUERY)["assetNodes"]}
        (mat,) = nodes[(schema, model)]["assetMaterializations"]
        entries = {e["label"]: e for e in mat["metadataEntries"]}
        assert "dagster/column_lineage" in entries
        assert f"| {column} | {sources} |" in entries["column lineage"]["mdStr"]

        out = Path(os.environ.get("GITOPS_DATA_SCREENSHOTS") or tmp_path / "screenshots")
        out.mkdir(parents=True, exist_ok=True)
        shot = out / f"column_lineage_{example}.png"
        # the Columns table of the asset page: each column's description names its sources
        assert _asset_page(port, f"/assets/{schema}/{model}", shot, f"from {sources}") >= 1
        assert shot.stat().st_size > 20_000
        print("\nscreenshot:", shot)
