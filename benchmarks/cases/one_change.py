"""Case 3: change one mid-DAG model, commit, sync: exactly it and its downstream are rebuilt.
Timed against the first full build of the same DAG."""

from __future__ import annotations

from bench.dag import CHANGED_MODEL, SEGMENT_RULE, SEGMENT_RULE_CHANGED, Scenario, built_dag
from bench.datarepo import copy_scenario
from bench.report import Row

ID = "3"
TITLE = "one-model change"


def expected_rebuilds(repo: str, sha: str, model: str) -> set[str]:
    from gitops_data.project.loader import load_project
    from gitops_data.project.tree import GitTree

    return load_project(GitTree(repo, sha)).downstream({model})


def run(ctx) -> list[Row]:
    base, full = built_dag(ctx)
    sc = Scenario(copy_scenario(base.root, ctx.work / "one_change"))
    sc.repo.replace("models.yml", SEGMENT_RULE, SEGMENT_RULE_CHANGED)
    sha = sc.repo.commit(f"change {CHANGED_MODEL}")
    expected = expected_rebuilds(str(sc.repo.path), sha, CHANGED_MODEL)
    ours = ctx.child("bench.steps:sync_ref", ref="main", **sc.kwargs())
    new_builds = ours["builds_total"] - full["builds_total"]
    if new_builds != len(expected) or set(ours["built"]) != expected:
        raise AssertionError(
            f"expected builds of {sorted(expected)}, catalog has {new_builds} new: {ours['built']}"
        )
    return [
        Row(
            ID,
            f"{TITLE} ({CHANGED_MODEL}) vs full build, {ctx.sizes.dag_rows:,} rows",
            ours["seconds"],
            full["seconds"],
            target="-",
            ours_mb=ours["peak_mb"],
            baseline_mb=full["peak_mb"],
            notes=f"rebuilt exactly {new_builds}/21 (asserted from gitops_meta.builds): "
            + ", ".join(sorted(expected))
            + "; baseline column = ours, first full build",
        )
    ]
