"""dbt conformance on public `integration_tests` suites: each suite run unedited (apart from a profile)
by dbt-duckdb and by gitops-data on the same DuckDB version, then compared relation by relation and
test by test. The suites are never committed: check them out yourself (one folder per package
repository, holding the package with its `integration_tests/`) and give their parent folder.

    python benchmarks/dbt_conformance.py --suites /tmp/conf --dbt /tmp/dbtvenv/bin/dbt --out /tmp/conf/run \
        dbt-utils dbt-date dbt-expectations dbt-audit-helper

Per suite, under --out/SUITE: proj (the suite with its packages in dbt_packages/, placed by hand as
`dbt deps` would), dbt (dbt's copy, dbt.duckdb, dbt.log), repo (a Git repo of the same files for us,
ours.duckdb, validate.txt, sync.txt). Runs are single-threaded on both sides."""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import decimal
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# suite folder -> (package name, the suites whose package it needs besides its own)
SUITES = {
    "dbt-utils": ("dbt_utils", ()),
    "dbt-date": ("dbt_date", ()),
    "dbt-expectations": ("dbt_expectations", ("dbt-date",)),
    "dbt-audit-helper": ("audit_helper", ("dbt-utils",)),
}
PROFILE = (
    "integration_tests:\n  target: duckdb\n  outputs:\n    duckdb:\n      type: duckdb\n"
    "      path: {db}\n      schema: analytics\n      threads: 1\n"
)
ENV = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}


def prepare(suites: Path, out: Path, suite: str) -> None:
    """proj/, dbt/ and repo/ (committed) for one suite."""
    if out.exists():
        shutil.rmtree(out)
    proj = out / "proj"
    shutil.copytree(
        suites / suite / "integration_tests", proj, ignore=shutil.ignore_patterns("dbt_packages", "target")
    )
    for needed in (suite, *SUITES[suite][1]):
        shutil.copytree(
            suites / needed,
            proj / "dbt_packages" / SUITES[needed][0],
            ignore=shutil.ignore_patterns("integration_tests", ".git"),
        )
    (out / "profiles").mkdir()
    (out / "profiles" / "profiles.yml").write_text(PROFILE.format(db=out / "dbt.duckdb"))
    shutil.copytree(proj, out / "dbt")
    shutil.copytree(proj, out / "repo")
    git = ["git", "-c", "user.email=conformance@localhost", "-c", "user.name=conformance"]
    for cmd in (
        ["init", "-q", "-b", "main"],
        ["add", "-A", "-f", "."],
        ["commit", "-q", "-m", f"suite {suite}"],
    ):
        subprocess.run([*git, *cmd], cwd=out / "repo", check=True)


def run(out: Path, dbt: str, ours: str) -> dict[str, int]:
    """dbt build, then our validate and sync; their exit codes."""
    codes = {}
    with open(out / "dbt.log", "w") as log:
        cmd = [dbt, "build", "--profiles-dir", str(out / "profiles"), "--target", "duckdb"]
        codes["dbt"] = subprocess.run(
            cmd, cwd=out / "dbt", env=ENV, stdout=log, stderr=log, timeout=1800
        ).returncode
    env = {**ENV, "DAGSTER_HOME": str(out / "dagster")}
    (out / "dagster").mkdir(exist_ok=True)
    for step in ("validate", "sync"):
        with open(out / f"{step}.txt", "w") as log:
            cmd = [ours, "--repo", ".", "--warehouse", str(out / "ours.duckdb"), step]
            done = subprocess.run(cmd, cwd=out / "repo", env=env, stdout=log, stderr=log, timeout=1800)
            codes[step] = done.returncode
    return codes


def _value(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 9)
    if isinstance(v, decimal.Decimal):
        return v.normalize()
    if isinstance(v, dt.datetime):
        return v.replace(tzinfo=None)
    return v


def _rows(con: Any, schema: str, table: str, columns: list[str]) -> list[tuple]:
    listed = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    got = con.execute(f'select {listed} from "{schema}"."{table}"').fetchall()
    return sorted((tuple(_value(v) for v in r) for r in got), key=repr)


def _columns(con: Any, schema: str, table: str) -> list[str]:
    sql = (
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position"
    )
    return [r[0] for r in con.execute(sql, [schema, table]).fetchall()]


def compare(out: Path) -> dict[str, Any]:
    """Relations dbt left in its file against ours (published, else the builds of the sync), and the
    tests each side ran."""
    import duckdb

    results = json.loads((out / "dbt" / "target" / "run_results.json").read_text())["results"]
    status = {r["unique_id"]: r["status"] for r in results}
    theirs = duckdb.connect(str(out / "dbt.duckdb"), read_only=True)
    skip = ("main", "information_schema", "pg_catalog")
    sql = (
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = current_database()"
    )
    dbt_rel = {n.lower(): (s, n) for s, n in theirs.execute(sql).fetchall() if s not in skip}
    report: dict[str, Any] = {
        "dbt tests": dict(
            collections.Counter(s for u, s in status.items() if u.startswith(("test.", "unit_test.")))
        ),
        "dbt relations": len(dbt_rel),
    }
    if not (out / "ours.duckdb").exists():
        return report
    ours = duckdb.connect(str(out / "ours.duckdb"), read_only=True)
    have = {
        n.lower(): (s, n)
        for s, n in ours.execute(sql).fetchall()
        if s not in skip and not s.startswith("gitops")
    }
    try:
        builds = ours.execute(
            "select model, table_name from gitops_meta.builds where table_name is not null"
        ).fetchall()
        audits = ours.execute(
            "select b.build_id, a.check_name, a.severity, a.passed "
            "from gitops_meta.audits a join gitops_meta.builds b using (build_id)"
        ).fetchall()
    except duckdb.CatalogException:  # never synced
        builds, audits = [], []
    for model, table in builds:
        have.setdefault(model.lower(), ("gitops_internal", table))
    differs: dict[str, str] = {}
    for name, (schema, table) in sorted(dbt_rel.items()):
        if name not in have:
            differs[name] = "not built here"
            continue
        want = _columns(theirs, schema, table)
        mine = _columns(ours, *have[name])
        if [c for c in want if c not in mine]:
            differs[name] = f"columns missing here: {[c for c in want if c not in mine]}"
        elif (a := _rows(theirs, schema, table, want)) != (b := _rows(ours, *have[name], want)):
            differs[name] = f"dbt {len(a)} rows, ours {len(b)}; dbt only {[r for r in a if r not in b][:2]}"
    tests: dict[tuple[str, str], list[tuple[str, bool]]] = {}
    for build, check, severity, passed in audits:  # a warn_if/error_if pair is one dbt test
        if not check.endswith("__type"):  # our own check of a seed's column_types
            tests.setdefault((build, re.sub(r"__warn(?=(_\d+)?$)", "", check)), []).append((severity, passed))
    report.update(
        {
            "our relations": len(have),
            "equal": len(dbt_rel) - len(differs),
            "differs": differs,
            "our tests": len(tests),
            "our failed tests": sum(1 for v in tests.values() if any(s == "error" and not p for s, p in v)),
        }
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suites", type=Path, required=True, help="parent folder of the package checkouts")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dbt", required=True, help="dbt executable (dbt-core 1.11 + dbt-duckdb)")
    parser.add_argument("--ours", default=str(Path(sys.executable).parent / "gitops-data"))
    parser.add_argument("names", nargs="*", default=list(SUITES))
    args = parser.parse_args()
    for suite in args.names:
        out = args.out / suite
        prepare(args.suites, out, suite)
        codes = run(out, args.dbt, args.ours)
        print(json.dumps({"suite": suite, "exit codes": codes, **compare(out)}, indent=1, default=str))


if __name__ == "__main__":
    main()
