"""The CLI's machine-readable output: every `--format json` document parses, with its stable fields;
`--format markdown` renders a plan and a diff for a pull-request comment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gitops_data.cli import entry
from gitops_data_tests.conftest import SMALL_PROJECT


@pytest.fixture
def cli(tmp_path, make_repo, monkeypatch, capsys, any_warehouse):
    repo = make_repo(SMALL_PROJECT)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    base = ["gitops-data", "--repo", str(repo.path), "--warehouse", any_warehouse]

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", [*base, *args])
        code = entry()
        out, err = capsys.readouterr()
        return code, out, err

    def doc(*args: str, code: int = 0) -> dict:
        got, out, err = run(*args, "--format", "json")
        assert got == code, err
        parsed = json.loads(out)
        assert parsed["kind"] == args[0] and parsed["version"] == 1
        return parsed

    run.repo, run.doc = repo, doc
    return run


def test_json_documents_of_every_command(cli):
    repo = cli.repo
    v = cli.doc("validate", "--ref", "main")
    assert v["valid"] and v["nodes"] == {"seed": 1, "sql": 3} and v["issues"] == []

    p = cli.doc("plan")
    assert p["summary"]["to_build"] == 4 and [m["model"] for m in p["models"]] == ["nums", "a", "b", "c"]
    a = next(m for m in p["models"] if m["model"] == "a")
    assert a["action"] == "build" and a["mode"] == "full" and a["file"] == "project.yml:6"
    assert {c["check"]: c["state"] for c in a["checks"]}["v__ge"] == "pending"

    assert cli("sync")[0] == 0
    s = cli.doc("status")
    assert s["environments"][0] | {"published": None} == {
        "env": "main",
        "schema": "analytics",
        "published": None,
        "head": repo.head(),
        "state": "up_to_date",
        "reason": "",
        "drift": False,
    }
    h = cli.doc("history")
    assert h["env"] == "main" and h["publishes"][0]["commit"] == repo.head() and h["publishes"][0]["changed"]

    repo.git("checkout", "-q", "-b", "feature/x")
    repo.replace("project.yml", "v * 2 as v2", "v * 3 as v2")
    repo.commit("triple")
    assert cli("sync", "--ref", "feature/x")[0] == 0
    d = cli.doc("diff", "main", "feature/x")
    assert [(m["model"], m["state"]) for m in d["models"]] == [("b", "changed"), ("c", "changed")]
    assert cli.doc("drift") == {"kind": "drift", "version": 1, "drift": []}

    repo.write("bad.yml", "models:\n  - name: x\n    sql: selct 1\n")
    repo.commit("typo")
    bad = cli.doc("validate", "--ref", "feature/x", code=2)
    assert not bad["valid"] and bad["issues"][0]["file"] == "bad.yml" and bad["issues"][0]["model"] == "x"


def test_markdown_plan_and_diff_for_a_pull_request(cli):
    repo = cli.repo
    assert cli("sync")[0] == 0
    repo.git("checkout", "-q", "-b", "feature/y")
    repo.replace("project.yml", "v * 2 as v2", "v * 3 as v2")
    repo.commit("triple")
    code, out, _ = cli("plan", "--ref", "feature/y", "--format", "markdown")
    assert code == 0 and out.startswith("### gitops-data plan: `feature/y`")
    assert "2 to build, 2 reused" in out and "| `b` | full | first build |" in out
    assert cli("sync", "--ref", "feature/y")[0] == 0
    code, out, _ = cli("diff", "main", "feature/y", "--format", "markdown")
    assert code == 0 and "| `b` | changed | 3 | 3 |" in out


def test_checkout_serves_an_old_commit_beside_production_until_dropped(cli, any_warehouse):
    from datetime import timedelta

    from gitops_data.deployment.core import Deployment
    from gitops_data.warehouse.inspect import collect_garbage
    from gitops_data_tests.conftest import objects, query

    repo = cli.repo
    repo.write("gitops_data.yaml", "name: t\nretention: {publishes: 1}\n")
    commits = []
    for i in range(4):  # four publishes; the checkout goes three publishes back
        repo.write("seeds/nums.csv", f"id,v\n1,{10 + i}\n2,20\n3,30\n")
        commits.append(repo.commit(f"v{i}"))
        assert cli("sync")[0] == 0
    code, out, err = cli("checkout", commits[0][:12])
    assert code == 0, err
    ws = Deployment(str(repo.path), any_warehouse)
    old = f"analytics__at_{commits[0][:10]}"
    assert query(ws, f"select v from {old}.a where id = 1") == [(10,)]
    assert query(ws, "select v from analytics.a where id = 1") == [(13,)]  # production serves the head
    states = {e["env"]: e["state"] for e in cli.doc("status")["environments"]}
    assert states == {"main": "up_to_date", f"checkout:at_{commits[0][:10]}": "checkout"}

    def gc():
        with ws.catalog() as cat:
            return collect_garbage(cat, ws.production_settings(), grace=timedelta(0))

    gc()  # retention keeps one publish of main: the checked-out builds stay because the checkout serves them
    assert query(ws, f"select v from {old}.a where id = 1") == [(10,)]
    assert cli("checkout", "--drop", f"at_{commits[0][:10]}")[0] == 0
    assert any(b.commit == commits[0] for b in gc().dropped)  # now they go
    assert objects(ws, old) == {}
    code, _, err = cli("checkout", "0000000")
    assert code == 1 and "no publish of any environment matches" in err


@pytest.mark.parametrize("command", [["status"], ["plan"], ["sync"], ["validate", "--ref", "main"]])
def test_a_repo_that_is_not_a_data_repo_stops_before_anything_is_read_or_written(
    tmp_path, make_repo, monkeypatch, capsys, command
):
    """A command run in the wrong Git repo (say, the gitops-data checkout) names it and the variable to
    set, and creates nothing: no warehouse, no catalog."""
    repo = make_repo({"README.md": "not data\n", "ci.yml": "jobs: {}\n"})
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    monkeypatch.setattr(
        sys, "argv", ["gitops-data", "--repo", str(repo.path), "--warehouse", str(warehouse), *command]
    )
    assert entry() == 1
    err = capsys.readouterr().err
    assert f"{repo.path} is not a data repo" in err and "GITOPS_DATA_REPO" in err
    assert "gitops_data.yaml" in err and "dbt_project.yml" in err
    assert not warehouse.parent.exists()


def test_validate_of_a_folder_needs_no_data_repo(tmp_path, make_repo, monkeypatch, capsys):
    folder = tmp_path / "project"
    for rel, text in SMALL_PROJECT.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    repo = make_repo({"README.md": "not data\n"})
    monkeypatch.setattr(sys, "argv", ["gitops-data", "--repo", str(repo.path), "validate", str(folder)])
    assert entry() == 0, capsys.readouterr().err


def test_the_console_script_validate_prints_everything_before_it_ends_at_once(tmp_path):
    """`gitops-data validate` ends without tearing down what it loaded (os._exit): its output, piped,
    and its exit code are still all there."""
    import subprocess

    folder = tmp_path / "project"
    for rel, text in SMALL_PROJECT.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    exe = str(Path(sys.executable).parent / "gitops-data")
    done = subprocess.run([exe, "validate", str(folder)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"valid: {folder}: 4 nodes")
    (folder / "project.yml").write_text(SMALL_PROJECT["project.yml"].replace("from a", "from nowhere"))
    done = subprocess.run([exe, "validate", str(folder)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown reference 'nowhere'" in done.stderr
    assert not (tmp_path / ".gitops_data").exists()


def test_a_large_plan_folds_the_models_with_nothing_to_do_into_one_line(
    tmp_path, make_repo, monkeypatch, capsys, warehouse
):
    sources = "".join(f"  - name: raw_{i:02d}\n    table: main.raw_{i:02d}\n" for i in range(25))
    repo = make_repo(
        {
            "gitops_data.yaml": "name: folded\n",
            "sources.yml": "sources:\n" + sources,
            "models.yml": "models:\n  - name: only_model\n    sql: select id from raw_00\n",
        }
    )
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    base = ["gitops-data", "--repo", str(repo.path), "--warehouse", warehouse, "plan"]

    def plan(*args: str) -> str:
        monkeypatch.setattr(sys, "argv", [*base, *args])
        assert entry() == 0
        return capsys.readouterr().out

    folded = plan()
    assert "only_model" in folded and "25 models" in folded and "raw_07" not in folded
    assert "`plan --all` lists them" in folded
    every = plan("--all")
    assert all(f"raw_{i:02d}" in every for i in range(25)) and "25 models" not in every
