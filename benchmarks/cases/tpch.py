"""Case tpch: a real-scale project over TPC-H data (tpchgen-cli, SF 1; SF 0.1 with --quick): 70 SQL
models in four layers with dbt's materializations (8 ephemeral, 50 tables, 12 views; the 22 TPC-H
queries among the reports), see bench/tpch/models.py.

Sides: ours (`sync`: `apply` with an in-process Dagster run), raw DuckDB (the same CREATE TABLE /
CREATE VIEW statements, ephemeral models inlined as subqueries, in one connection) and dbt-duckdb in
its own virtualenv (full mode, or --with-dbt). Every side starts from a warehouse file that already
holds the 8 TPC-H tables (`main.<table>`, loaded outside the timed steps); the project reads them as
`table:` sources.

Rows: the first build; a breaking change to a warehouse model on a branch; the merge of that branch;
its revert; an additive change (a warehouse model gains a column that no downstream model reads).
For the change rows the raw side runs the statements of the changed model and its downstream (what
a tool that rebuilds `modified+` has to run), and dbt runs `state:modified+`."""

from __future__ import annotations

import shutil

from bench.datarepo import DataRepo, dagster_home, init_repo
from bench.measure import step
from bench.report import Row
from bench.sidevenv import Unavailable
from bench.steps import query
from bench.tpch import data, dbt_side
from bench.tpch.models import (
    ADDITIVE_MODEL,
    BREAKING_MODEL,
    EXTERNAL_SCHEMA,
    additive,
    breaking,
    downstream,
    models,
    project_files,
    raw_statements,
)
from bench.tpch.queries import SF1_ROWS, SF1_VALUES

ID = "tpch"
TITLE = "TPC-H project"
INTERNAL_SCHEMA = "gitops_internal"
META = "gitops_meta"
DBT_BRANCH = " --defer, in a dev schema"


def scale_factor(ctx) -> float:
    return 0.1 if ctx.quick else 1.0


# -- child steps ---------------------------------------------------------------------------------------


def raw_steps(warehouse: str, steps: list[dict], count: list[str]) -> dict:
    """Raw DuckDB: each step's statements in one connection, timed per step up to a CHECKPOINT (the
    data is on disk, as ours' is when a sync ends); then the row counts of `count` as the first step
    left them."""
    import duckdb

    con = duckdb.connect(warehouse)
    out: dict = {}
    try:
        for i, spec in enumerate(steps):
            with step(f"tpch_raw_{spec['name']}") as m:
                for sql in spec["statements"]:
                    con.execute(sql)
                con.execute("checkpoint")
            m["statements"] = len(spec["statements"])
            out[spec["name"]] = m
            if i == 0:
                out["rows"] = {n: con.execute(f'select count(*) from "{n}"').fetchone()[0] for n in count}
    finally:
        con.close()
    return out


# -- the sides -----------------------------------------------------------------------------------------


def _git_data_repo(root, ms) -> DataRepo:
    return init_repo(root / "repo", project_files(ms))


def written(warehouse: str, commit: str) -> list[str]:
    """The models a sync of `commit` wrote data for: its builds minus aliases (a new build record
    for the table of an earlier build, no data written)."""
    rows = query(
        warehouse,
        f"""select b.model from {META}.builds b where b.commit = ? and not exists (
                select 1 from {META}.builds o
                where o.table_name = b.table_name and o.created_at < b.created_at)
            order by b.model""",
        [commit],
    )
    return [r[0] for r in rows]


def run_ours(ctx, sources, ms) -> dict:
    """First build of main; the breaking change on branch `feature`; merge; revert; the additive
    change on main. Each `sync` in its own child; asserts what each had to build."""
    root = ctx.fresh("tpch_ours")
    repo = _git_data_repo(root, ms)
    home = dagster_home(root / "dagster_home")
    warehouse = root / "warehouse.duckdb"
    shutil.copy(sources, warehouse)
    kw = {"repo": str(repo.path), "warehouse": str(warehouse), "home": str(home)}
    built = {m.name for m in ms if m.built}

    def sync(ref: str, name: str) -> dict:
        result = ctx.child("bench.steps:sync_ref", ref=ref, name=f"tpch_{name}", **kw)
        if result["status"] != "published":
            raise AssertionError(f"{name}: sync of {ref} did not publish: {result['status']}")
        result["written"] = written(str(warehouse), repo.head(ref)) if result["built"] else []
        return result

    out = {"initial": sync("main", "initial")}
    if set(out["initial"]["built"]) != built:
        raise AssertionError(f"first build: expected {len(built)} builds, got {len(out['initial']['built'])}")
    out["rows"] = {
        n: query(str(warehouse), f'select count(*) from {EXTERNAL_SCHEMA}."{n}"')[0][0] for n in built
    }
    out["answers"] = _answers(str(warehouse))
    out["objects"] = {
        kind: query(
            str(warehouse), f"select count(*) from duckdb_{kind}() where schema_name = ?", [INTERNAL_SCHEMA]
        )[0][0]
        for kind in ("tables", "views")
    }

    repo.git("checkout", "-q", "-b", "feature")
    for rel, text in project_files(breaking(ms)).items():
        repo.write(rel, text)
    repo.commit(f"breaking change to {BREAKING_MODEL}")
    out["branch"] = sync("feature", "branch")
    expected = downstream(ms, {BREAKING_MODEL}) & built
    if set(out["branch"]["built"]) != expected:
        raise AssertionError(
            f"breaking change: expected builds of {sorted(expected)}, got {sorted(out['branch']['built'])}"
        )

    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    out["merge"] = sync("main", "merge")
    repo.git("revert", "--no-edit", "-m", "1", "HEAD")
    out["revert"] = sync("main", "revert")
    for name in ("merge", "revert"):
        if out[name]["built"]:
            raise AssertionError(f"{name} should publish without building, built {out[name]['built']}")

    for rel, text in project_files(additive(ms)).items():
        repo.write(rel, text)
    repo.commit(f"additive change to {ADDITIVE_MODEL}")
    out["additive"] = sync("main", "additive")
    if out["additive"]["written"] != [ADDITIVE_MODEL]:
        raise AssertionError(
            f"additive change: expected to write only {ADDITIVE_MODEL}, wrote {out['additive']['written']}"
        )
    return out


def run_raw(ctx, sources, ms) -> dict:
    warehouse = ctx.fresh("tpch_raw") / "raw.duckdb"
    shutil.copy(sources, warehouse)
    breaking_set = downstream(ms, {BREAKING_MODEL})
    rebuild = raw_statements(breaking(ms), only=breaking_set, replace_=True)
    steps = [
        {"name": "initial", "statements": raw_statements(ms)},
        {"name": "branch", "statements": rebuild},
        {"name": "merge", "statements": rebuild},
        {"name": "revert", "statements": raw_statements(ms, only=breaking_set, replace_=True)},
        {
            "name": "additive",
            "statements": raw_statements(additive(ms), only=downstream(ms, {ADDITIVE_MODEL}), replace_=True),
        },
    ]
    return ctx.child(
        "cases.tpch:raw_steps",
        warehouse=str(warehouse),
        steps=steps,
        count=[m.name for m in ms if m.built],
    )


def run_dbt(ctx, folder, ms) -> tuple[dict | None, str]:
    """dbt's measurements, or None and the reason it did not run."""
    if ctx.quick and not ctx.with_dbt:
        return None, "dbt: not run in --quick mode (add --with-dbt)"
    logs = ctx.folder("logs")
    try:
        python = dbt_side.ensure_venv(logs / "dbt_venv.log")
    except Unavailable as exc:
        print(f"  dbt column left empty: cannot install dbt: {exc}")
        return None, f"dbt: cannot install it: {exc}"
    try:
        result = dbt_side.run(python, ctx.fresh("tpch_dbt"), ms, folder, logs / "tpch_dbt.log")
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        print(f"  dbt column left empty: {exc}")
        return None, f"dbt: failed ({first[:150]}; see logs/tpch_dbt.log)"
    v = result["versions"]
    return result, f"dbt-core {v['dbt']} + dbt-duckdb {v['dbt_duckdb']} on duckdb {v['duckdb']}, threads 2"


# -- the case ------------------------------------------------------------------------------------------


def _answers(warehouse: str) -> dict[str, float]:
    """Ours' published single-value TPC-H answers, to the cent."""
    return {
        name: float(query(warehouse, f'select round({col}, 2) from {EXTERNAL_SCHEMA}."{name}"')[0][0])
        for name, (col, _) in SF1_VALUES.items()
    }


def _compare_rows(ours: dict, raw: dict, sf: float, answers: dict[str, float]) -> list[str]:
    wrong = {n: (ours[n], raw.get(n)) for n in ours if ours[n] != raw.get(n)}
    if wrong:
        raise AssertionError(f"row counts differ between ours and raw DuckDB: {wrong}")
    checked = [f"row counts of all {len(ours)} models equal to raw"]
    if sf == 1:
        off = {n: (raw[n], want) for n, want in SF1_ROWS.items() if raw[n] != want}
        if off:
            raise AssertionError(f"TPC-H answers' row counts differ from the specification's: {off}")
        wrong_values = {n: (answers[n], want) for n, (_, want) in SF1_VALUES.items() if answers[n] != want}
        if wrong_values:
            raise AssertionError(f"TPC-H answers differ from the specification's: {wrong_values}")
        checked.append(
            "the 22 answers have the specification's row counts, Q6, Q14, Q17, Q19 its values (ours)"
        )
    return checked


def _dbt_rows_differ(ours: dict, theirs: dict) -> str:
    """Empty when dbt's models have our row counts, else what differs (dbt's numbers are then dropped)."""
    differ = {n: (ours[n], theirs.get(n)) for n in ours if ours[n] != theirs.get(n)}
    return f"dbt's row counts differ from ours, dbt column dropped: {differ}"[:300] if differ else ""


def run(ctx) -> list[Row]:
    import duckdb

    sf = scale_factor(ctx)
    logs = ctx.folder("logs")
    try:
        folder, generated = data.parquet_dir(sf, logs / "tpchgen.log")
    except Unavailable as exc:
        return [Row(ID, TITLE, status="skipped", notes=f"skipped: no TPC-H data: {exc}")]
    sources = ctx.fresh("tpch_sources") / "sources.duckdb"
    loaded = ctx.child("bench.tpch.data:load_sources", warehouse=str(sources), folder=str(folder))
    ms = models(sf)
    n_built = sum(m.built for m in ms)
    kinds = {k: sum(m.materialized == k for m in ms) for k in ("table", "view", "ephemeral")}

    raw = run_raw(ctx, sources, ms)
    ours = run_ours(ctx, sources, ms)
    theirs, dbt_note = run_dbt(ctx, folder, ms)
    checked = _compare_rows(ours["rows"], raw["rows"], sf, ours["answers"])
    if theirs is not None:
        differ = _dbt_rows_differ(ours["rows"], theirs["rows"])
        if differ:
            print(f"  {differ}")
            theirs, dbt_note = None, differ
        else:
            checked[0] += " and dbt"
    if ours["objects"] != {"tables": kinds["table"], "views": kinds["view"]}:
        raise AssertionError(f"internal schema holds {ours['objects']}, expected {kinds}")
    checked.append(f"internal schema: {kinds['table']} tables, {kinds['view']} views")

    lineitems = loaded["rows"]["lineitem"]
    o, r = ours["initial"], raw["initial"]
    overhead_ms = (o["seconds"] - r["seconds"]) / n_built * 1000
    data_note = f"data generated in {generated:.1f} s" if generated else "data cached"
    notes = (
        f"built ours {len(o['built'])}"
        + (f", dbt {len(theirs['initial']['built'])}" if theirs else "")
        + f"; (ours - raw) / {n_built} models = {overhead_ms:.0f} ms per model; "
        + "; ".join(checked)
        + f"; {dbt_note}; ours on duckdb {duckdb.__version__}; {data_note}"
    )
    label = f"SF {sf:g}, {lineitems:,} lineitems"
    rows = [
        _row(
            "a",
            f"first build, {len(ms)} models ({kinds['table']} tables, {kinds['view']} views, "
            f"{kinds['ephemeral']} ephemeral), {label}",
            o,
            r,
            theirs and theirs["initial"],
            notes,
            {"overhead_ms_per_model": overhead_ms, "scale_factor": sf, "source_rows": loaded["rows"]},
        )
    ]
    labels = {
        "branch": f"breaking change to {BREAKING_MODEL} on a branch",
        "merge": "merge the branch into main",
        "revert": "revert the merge",
        "additive": f"additive change: {ADDITIVE_MODEL} gains a column nobody reads",
    }
    ours_says = {
        "branch": "(asserted: the model and its downstream)",
        "merge": "(asserted: views flip to the branch's builds)",
        "revert": "(asserted: views flip back)",
        "additive": f"(asserted: {ADDITIVE_MODEL}), "
        f"kept {len(ours['additive']['built']) - 1} downstream as aliases (no data written)",
    }
    for letter, (key, text) in zip("bcde", labels.items(), strict=True):
        t = theirs[key] if theirs else None
        notes = (
            f"rebuilt: ours {len(ours[key]['written'])} {ours_says[key]}; "
            f"raw {raw[key]['statements']} (the model and its downstream)"
            + (
                f"; dbt {len(t['built'])} (state:modified+{DBT_BRANCH if key == 'branch' else ''})"
                if t
                else ""
            )
        )
        rows.append(_row(letter, f"{text}, {label}", ours[key], raw[key], t, notes, {}))
    return rows


def _row(letter: str, name: str, o: dict, r: dict, t: dict | None, notes: str, details: dict) -> Row:
    return Row(
        f"{ID}-{letter}",
        name,
        o["seconds"],
        r["seconds"],
        peer=t["seconds"] if t else None,
        peer_name="dbt",
        ours_mb=o["peak_mb"],
        baseline_mb=r["peak_mb"],
        notes=notes,
        details={**details, "built": o["built"], "dbt": t, "peer_mb": t["peak_mb"] if t else None},
    )
