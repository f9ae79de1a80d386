"""Static column analysis: what `validate` finds about columns before anything runs (each error
class on a project that would otherwise build, with file:line), what it must not flag (the SQL
DuckDB accepts), and the columns and lineage it infers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_data.errors import ProjectError
from gitops_data.project.loader import load_project
from gitops_data.project.tree import DirTree

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SEEDS = (
    "seeds:\n"
    "  - name: orders\n"
    "    path: seeds/orders.csv\n"
    "  - name: customers\n"
    "    path: seeds/customers.csv\n"
    "    columns:\n"
    "      customer_id: {type: bigint}\n"
)


def _write(root: Path, models: str, extra: dict[str, str] | None = None) -> DirTree:
    files = {
        "gitops_data.yaml": "name: t\n",
        "seeds/orders.csv": "order_id,customer_id,amount,status\n1,1,10.5,done\n2,2,3.0,open\n",
        "seeds/customers.csv": "customer_id,name,tags\n1,ann,a\n2,bob,b\n",
        "seeds.yml": SEEDS,
        "models.yml": "models:\n" + models,
        **(extra or {}),
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return DirTree(str(root))


def _issues(tree: DirTree) -> list[str]:
    with pytest.raises(ProjectError) as exc:
        load_project(tree)
    return [str(i) for i in exc.value.issues]


def test_a_misspelled_column_is_found_at_its_line_with_a_hint(tmp_path):
    tree = _write(
        tmp_path,
        "  - name: totals\n"  # line 2
        "    sql: |\n"  # line 3
        "      select customer_id,\n"  # line 4
        "             sum(amout) as total\n"  # line 5
        "      from orders group by all\n",
    )
    assert _issues(tree) == [
        "models.yml:5 [totals]: column 'amout' is not in orders (columns: order_id, customer_id, amount, "
        "status); did you mean 'amount'?"
    ]


def test_a_select_item_reads_only_the_aliases_of_the_items_before_it(tmp_path):
    # DuckDB: "cannot be referenced before it is defined"; an earlier alias, and any alias in
    # WHERE / GROUP BY / ORDER BY, are fine
    tree = _write(
        tmp_path,
        "  - name: own\n    sql: select order_id, amnt + 1 as amnt from orders\n"  # line 2
        "  - name: later\n    sql: select tax + 1 as total, amount as tax from orders\n"  # line 4
        "  - name: fine\n    sql: |\n"
        "      select amount as a, a * 2 as b from orders where a > 0 group by a order by b\n",
    )
    assert sorted(_issues(tree)) == [
        "models.yml:3 [own]: column 'amnt' is not in orders (columns: order_id, customer_id, amount, "
        "status); 'amnt' is the alias of this or a later select item, which an item cannot read (only "
        "the aliases of the items before it)",
        "models.yml:5 [later]: column 'tax' is not in orders (columns: order_id, customer_id, amount, "
        "status); 'tax' is the alias of this or a later select item, which an item cannot read (only "
        "the aliases of the items before it)",
    ]


def test_a_qualified_column_in_a_separate_sql_file_points_at_that_file(tmp_path):
    tree = _write(
        tmp_path,
        "  - name: joined\n    sql_file: sql/joined.sql\n",
        {
            "sql/joined.sql": "select o.order_id,\n  c.nme\n"
            "from orders o join customers c using (customer_id)\n"
        },
    )
    assert _issues(tree) == [
        "sql/joined.sql:2 [joined]: column 'nme' is not in c (columns: customer_id, name, tags); "
        "did you mean 'name'?"
    ]


def test_an_ambiguous_column_is_found(tmp_path):
    tree = _write(
        tmp_path,
        "  - name: joined\n"
        "    sql: select customer_id, amount from orders o\n"
        "      join customers c on o.customer_id = c.customer_id\n",
    )
    assert _issues(tree) == [
        "models.yml:3 [joined]: column 'customer_id' is ambiguous: 'o' and 'c' both have it; "
        "write o.customer_id"
    ]


def test_a_columns_entry_and_a_check_naming_no_output_column_are_found_at_their_keys(tmp_path):
    tree = _write(
        tmp_path,
        "  - name: per_customer\n"  # 2
        "    sql: select customer_id, sum(amount) as total from orders group by all\n"  # 3
        "    columns:\n"  # 4
        "      customer_id: {nullable: false}\n"  # 5
        "      totl: {checks: [{ge: 0}]}\n"  # 6
        "    checks:\n"  # 7
        "      - unique: [customer_id]\n"  # 8
        "      - freshness: {column: updated_at, max_age: 24h}\n"  # 9
        "      - relationship: {column: customer_id, to: customers, field: id}\n",  # 10
    )
    assert _issues(tree) == [
        "models.yml:6 [per_customer]: columns.totl: the query has no column 'totl'; did you mean 'total'?",
        "models.yml:9 [per_customer]: checks: freshness names 'updated_at', which the query does not output",
        "models.yml:10 [per_customer]: checks: relationship field 'id' is not a column of customers",
    ]


def test_a_declared_type_the_query_cannot_produce_is_found(tmp_path):
    tree = _write(
        tmp_path,
        "  - name: typed\n"
        "    sql: select cast(order_id as varchar) as order_id, customer_id, 'x' as label from orders\n"
        "    columns:\n"
        "      order_id: {type: bigint}\n"  # 5
        "      label: {type: text}\n",  # a string: fine
    )
    assert _issues(tree) == [
        "models.yml:5 [typed]: columns.order_id.type: declared BIGINT, but the query makes it VARCHAR"
    ]


def test_types_and_columns_flow_downstream_and_every_issue_comes_at_once(tmp_path):
    tree = _write(
        tmp_path,
        "  - name: stg\n"
        "    sql: select customer_id as cid, cast(amount as decimal(12,2)) as amount from orders\n"
        "  - name: mart\n"
        "    sql: select customer_id, amount from stg\n"  # line 5: customer_id was renamed
        "    columns:\n"
        "      amount: {type: 'decimal(10,2)'}\n",  # line 7
        {"bad.yml": "models:\n  - name: broken\n    sql: select 1 from nowhere\n"},
    )
    assert _issues(tree) == [
        "bad.yml:2 [broken]: unknown reference 'nowhere'",
        "models.yml:5 [mart]: column 'customer_id' is not in stg (columns: cid, amount)",
        "models.yml:7 [mart]: columns.amount.type: declared DECIMAL(10, 2), but the query makes it "
        "DECIMAL(12, 2)",
    ]


VALID_SQL = [
    "select * from orders",
    "select * exclude (status) from orders",
    "select * replace (amount * 2 as amount) from orders",
    "select o.*, c.name from orders o join customers c using (customer_id)",
    "select customer_id, name from orders join customers using (customer_id)",
    "select customer_id from orders natural join customers",
    "select amount * 2 as doubled, doubled + 1 as more from orders where more > 0",
    "with big as (select * from orders where amount > 5) select big.order_id, status from big",
    "with c(a, b) as (select order_id, amount from orders) select a, b from c",
    "select order_id from orders union all select customer_id from customers order by order_id",
    "select order_id, row_number() over (partition by customer_id order by amount) as rn from orders",
    "select order_id, rn from (select order_id, row_number() over () as rn from orders) t where rn = 1",
    "select order_id from orders qualify row_number() over (partition by customer_id) = 1",
    'select "Order_ID", ORDERS.AMOUNT from orders',
    "select {'a': order_id, 'b': status} as s from orders",
    "select s.a from (select {'a': order_id} as s from orders)",
    "select list_transform([amount], lambda x: x + 1) as xs from orders",
    "select order_id from orders o "
    "where exists (select 1 from customers c where c.customer_id = o.customer_id)",
    "select order_id, (select max(name) from customers c where c.customer_id = orders.customer_id) as n "
    "from orders",
    "select orders from orders",
    "select current_date as today, order_id from orders",
    "select i, order_id from orders, range(3) t(i)",
    "select unnest([1, 2]) as x, order_id from orders",
    "select customer_id, count(*) from orders group by all order by all",
    "select customer_id, max(amount) filter (where status = 'done') as m from orders group by customer_id",
    "from orders select order_id",
    "from orders",
    "select columns('amount|status') from orders",
    "select * from orders pivot (sum(amount) for status in ('done', 'open'))",
    "select order_id, l.x from orders, lateral (select amount * 2 as x) l",
    "select a, b from (values (1, 2)) v(a, b)",
    "select order_id from orders union by name select customer_id as order_id from customers",
    "select coalesce(o.amount, 0) as amount from orders as o left join customers using (customer_id)",
]


@pytest.mark.parametrize("sql", VALID_SQL)
def test_sql_duckdb_accepts_is_not_flagged(tmp_path, sql):
    tree = _write(tmp_path, f"  - name: m\n    sql: {sql!r}\n")
    assert load_project(tree).nodes["m"].kind == "sql"


def test_unknown_inputs_give_a_note_and_no_error(tmp_path):
    tree = _write(
        tmp_path,
        "  - name: calc\n    python: py/calc.py:calc\n    columns:\n      order_id: {type: bigint}\n"
        "  - name: down\n    sql: select order_id, whatever, anything_else from calc\n",
        {"py/calc.py": "def calc(orders):\n    return orders\n"},
    )
    project = load_project(tree)
    assert project.columns.of("down").names == ["order_id", "whatever", "anything_else"]
    assert [c.type for c in project.columns.of("down").columns] == ["BIGINT", None, None]
    external = _write(
        tmp_path / "ext",
        "  - name: down\n    sql: select whatever from ext\n",
        {"ext.yml": "sources:\n  - name: ext\n    table: main.somewhere\n"},
    )
    notes = load_project(external).columns.notes
    assert notes == {
        "ext": "columns unknown: an external table without `columns:`",
        "down": "columns not checked: reads ext, whose columns are unknown",
    }


def test_columns_and_lineage_are_inferred(tmp_path):
    tree = _write(
        tmp_path,
        "  - name: stg\n"
        "    sql: select o.order_id, o.amount * 2 as doubled, c.name\n"
        "      from orders o join customers c using (customer_id)\n"
        "  - name: mart\n"
        "    sql: |\n"
        "      with t as (select name, sum(doubled) as total from stg group by name)\n"
        "      select * from t\n",
    )
    cols = load_project(tree).columns
    assert [(c.name, sorted(c.sources)) for c in cols.of("stg").columns] == [
        ("order_id", [("orders", "order_id")]),
        ("doubled", [("orders", "amount")]),
        ("name", [("customers", "name")]),
    ]
    assert [(c.name, sorted(c.sources)) for c in cols.of("mart").columns] == [
        ("name", [("stg", "name")]),
        ("total", [("stg", "doubled")]),
    ]
    assert cols.of("customers").get("CUSTOMER_ID").type == "BIGINT"


@pytest.mark.parametrize("example", ["shop", "jaffle_dbt"])
def test_the_examples_validate_with_known_columns(example):
    project = load_project(DirTree(str(EXAMPLES / example)))
    sql = [n for n, node in project.nodes.items() if node.kind == "sql"]
    assert sum(1 for n in sql if project.columns.of(n).complete) >= len(sql) - 1


def test_materializations_of_the_example_carry_column_lineage(make_repo, warehouse, instance):
    import dagster as dg

    from gitops_data.deployment.core import Deployment
    from gitops_data_tests.conftest import sync

    repo = make_repo(example=True)
    ws = Deployment(str(repo.path), warehouse)
    sync(ws, "main", instance)
    event = instance.get_latest_materialization_event(dg.AssetKey(["analytics", "order_payments"]))
    md = event.asset_materialization.metadata
    deps = md["dagster/column_lineage"].value.deps_by_column
    assert [(d.asset_key, d.column_name) for d in deps["outstanding"]] == [
        (dg.AssetKey(["analytics", "stg_orders"]), "amount"),
        (dg.AssetKey(["analytics", "stg_payments"]), "amount"),
    ]
    assert "payment_count" not in deps  # count(*) reads no column
    assert "| paid_amount | stg_payments.amount |" in md["column lineage"].value
    schema = {c.name: c.description for c in md["dagster/column_schema"].value.columns}
    assert list(schema)[:2] == ["order_id", "customer_id"]
    assert schema["outstanding"] == "from stg_orders.amount, stg_payments.amount"
    assert schema["payment_count"] is None
    # stored in the event log, not only in memory
    records = instance.fetch_materializations(dg.AssetKey(["analytics", "stg_orders"]), limit=1).records
    lineage = records[0].asset_materialization.metadata["dagster/column_lineage"].value
    assert [d.column_name for d in lineage.deps_by_column["order_date"]] == ["ordered_at"]

    # a branch that changes one column: its plan names the columns downstream and their checks
    from gitops_data.deployment import operations as ops

    repo.git("checkout", "-q", "-b", "feature/amount")
    repo.replace("models/stg_orders.sql", "cast(amount as", "cast(amount * 1 as")
    repo.commit("amount")
    (impact,) = ops.plan(ws, ops.target(ws, "feature/amount")).impact
    assert (impact.model, impact.changed) == ("stg_orders", ("amount",))
    assert ("daily_revenue", "revenue") in impact.downstream
    assert ("stg_orders", "amount__ge") in impact.checks
    assert ("order_payments", "outstanding") in impact.unchecked


def _cli(monkeypatch, capsys, repo, *args: str) -> tuple[int, str, str]:
    import sys

    from gitops_data.cli import entry

    monkeypatch.setattr(sys, "argv", ["gitops-data", "--repo", str(repo.path), *args])
    code = entry()
    out, err = capsys.readouterr()
    return code, out, err


def test_lineage_command_shows_upstream_and_downstream_columns(make_repo, monkeypatch, capsys, tmp_path):
    import json

    monkeypatch.chdir(tmp_path)  # no warehouse is opened: the answer comes from the SQL
    repo = make_repo(example=True)
    code, out, err = _cli(
        monkeypatch, capsys, repo, "lineage", "ORDER_PAYMENTS.outstanding", "--format", "json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["kind"], doc["model"], doc["column"], doc["complete"]) == (
        "lineage",
        "order_payments",
        "outstanding",
        True,
    )
    up = {(r["model"], r["column"]): r["from"] for r in doc["upstream"]}
    assert up == {
        ("stg_orders", "amount"): ["raw_orders.amount"],
        ("stg_payments", "amount"): ["raw_payments.amount"],
        ("raw_orders", "amount"): [],
        ("raw_payments", "amount"): [],
    }
    assert doc["downstream"] == []
    code, out, err = _cli(monkeypatch, capsys, repo, "lineage", "stg_orders.amount")
    assert code == 0, err
    assert "  order_payments.amount  <- stg_orders.amount" in out
    assert "  daily_revenue.revenue  <- orders_enriched.amount" in out
    assert not (tmp_path / ".gitops_data").exists()
    code, out, err = _cli(monkeypatch, capsys, repo, "lineage", "order_payments.outstandin")
    assert code == 1
    assert "has no column 'outstandin'" in err and "did you mean 'outstanding'?" in err


IMPACT_MODELS = (
    "  - name: stg\n"
    "    sql: select order_id, amount * 2 as doubled, status from orders\n"
    "    columns:\n"
    "      doubled: {checks: [{ge: 0}]}\n"
    "  - name: mart\n"
    "    sql: select status, sum(doubled) as total, count(*) as n from stg group by all\n"
    "    checks:\n"
    "      - unique: [status]\n"
    "  - name: other\n"
    "    sql: select order_id from stg\n"
)


def test_plan_names_the_downstream_columns_a_change_touches_and_the_checks_on_them(tmp_path):
    from gitops_data.plan import Plan
    from gitops_data.plan.impact import column_impact
    from gitops_data.render import impact_lines, plan_body

    before = load_project(_write(tmp_path / "a", IMPACT_MODELS))
    after = load_project(_write(tmp_path / "b", IMPACT_MODELS.replace("amount * 2", "amount * 3")))
    (impact,) = column_impact(before, after)
    assert (impact.model, impact.changed, impact.downstream) == ("stg", ("doubled",), (("mart", "total"),))
    assert impact.checks == (("stg", "doubled__ge"),)
    assert impact.unchecked == (("mart", "total"),)
    # a change to which rows a query keeps touches every column it outputs
    rows = load_project(
        _write(tmp_path / "c", IMPACT_MODELS.replace("from orders\n", "from orders where false\n"))
    )
    (impact,) = column_impact(before, rows)
    assert impact.changed == ("order_id", "doubled", "status")
    assert impact.downstream == (("mart", "status"), ("mart", "total"), ("other", "order_id"))
    assert ("mart", "unique_combination") in impact.checks
    assert column_impact(before, before) == ()
    plan = Plan("main", "analytics", "c" * 40, "gitops_internal", {}, impact=(impact,))
    assert Plan.from_json(plan.to_json()) == plan
    assert plan_body(plan)["column_impact"][0]["downstream"] == [
        "mart.status",
        "mart.total",
        "other.order_id",
    ]
    assert impact_lines(plan)[0].startswith("stg changes order_id, doubled, status; downstream: mart.status")


def test_what_the_analysis_cannot_be_sure_of_is_not_flagged(tmp_path):
    tree = _write(
        tmp_path,
        # an external table's declared columns may be a few of its columns
        "  - name: from_ext\n    sql: select id, undeclared from ext\n"
        "    columns:\n      id: {type: bigint}\n"
        # a header DuckDB reads as data (numbers) gives no names; spaces around names are trimmed
        "  - name: from_numbers\n    sql: select column0 from numbers\n"
        "  - name: from_spaced\n    sql: select b from spaced\n"
        # a model reading a column of a table function or of VALUES without names
        "  - name: from_range\n    sql: select range from range(3)\n",
        {
            "ext.yml": "sources:\n  - name: ext\n    table: main.ext\n"
            "    columns:\n      id: {description: key}\n"
            "  - name: numbers\n    path: data/numbers.csv\n  - name: spaced\n    path: data/spaced.csv\n",
            "data/numbers.csv": "1,2\n3,4\n",
            "data/spaced.csv": "a, b\n1,2\n",
        },
    )
    project = load_project(tree)
    assert project.columns.of("spaced").names == ["a", "b"]
    assert not project.columns.of("numbers").complete
    assert not project.columns.of("ext").complete and project.columns.of("ext").names == ["id"]


LAST_BUILD_FILES = {
    "gitops_data.yaml": "name: t\n",
    "seeds/orders.csv": "order_id,customer_id,amount,status\n1,1,10.5,done\n2,2,3.0,open\n",
    "models.yml": "seeds:\n"
    "  - name: orders\n"
    "    path: seeds/orders.csv\n"
    "models:\n"
    "  - name: calc\n"
    "    python: py/calc.py:calc\n"
    "  - name: down\n"  # line 7
    "    sql: |\n"
    "      select order_id,\n"
    "             amount\n"  # line 10
    "      from calc\n",
    "py/calc.py": "def calc(orders):\n    return orders\n",
}


def test_the_last_builds_columns_stand_in_for_a_python_model_without_columns(
    make_repo, warehouse, instance, monkeypatch, capsys, tmp_path
):
    from gitops_data.deployment.core import Deployment
    from gitops_data.engines.duckdb import warehouse_lock
    from gitops_data_tests.conftest import sync

    monkeypatch.chdir(tmp_path)
    repo = make_repo(LAST_BUILD_FILES)
    wh = ["--warehouse", warehouse]
    code, out, err = _cli(monkeypatch, capsys, repo, *wh, "validate")
    assert code == 0, err
    assert "note: calc: columns unknown: a Python model without `columns:`" in out
    assert "note: down: columns not checked: reads calc, whose columns are unknown" in out
    assert not Path(warehouse).parent.exists()  # validate created no warehouse
    sync(Deployment(str(repo.path), warehouse), "main", instance)

    repo.replace("models.yml", "             amount\n", "             amout\n")
    code, out, err = _cli(monkeypatch, capsys, repo, *wh, "validate")
    assert code == 2
    (line,) = [x for x in err.splitlines() if "amout" in x]
    assert line.startswith(
        "  - models.yml:10 [down]: column 'amout' is not in calc (columns: order_id, customer_id, amount, "
        "status); did you mean 'amount'? [the columns of calc (commit "
    )
    assert "are from the last build, not the code" in err
    repo.replace("models.yml", "             amout\n", "             amount\n")
    code, out, err = _cli(monkeypatch, capsys, repo, *wh, "validate")
    assert code == 0, err
    assert "note: calc: columns from its last build (commit " in out
    assert "not from the code: order_id, customer_id, amount, status" in out
    assert "down:" not in out  # its columns are checked now

    # a warehouse another process holds is not waited for: skipped, in one line
    repo.replace("models.yml", "             amount\n", "             amout\n")
    with warehouse_lock(warehouse, timeout=1):
        code, out, err = _cli(monkeypatch, capsys, repo, *wh, "validate")
    assert code == 0, err
    assert "note: columns of the last builds not read: the warehouse is busy (pid " in out
    assert "note: calc: columns unknown" in out


def test_the_last_builds_columns_are_asked_only_for_what_nothing_static_describes(tmp_path):
    from gitops_data.project.columns import BuiltColumns

    tree = _write(
        tmp_path,
        "  - name: calc\n    python: py/calc.py:calc\n    columns:\n      order_id: {type: bigint}\n"
        "  - name: down\n"
        "    sql: select order_id, whatever, ext.regin from calc join ext using (order_id)\n"
        "    checks:\n"
        "      - relationship: {column: order_id, to: ext, field: order_ident}\n",
        {
            "py/calc.py": "def calc(orders):\n    return orders\n",
            "ext.yml": "sources:\n  - name: ext\n    table: main.somewhere\n",
        },
    )
    asked = []

    def last_built(settings, models):
        asked.append(models)
        return {"ext": BuiltColumns(("order_id", "region"), "abc1234def0", "built 2026-12-03 10:00 UTC")}

    project = load_project(tree, last_built=lambda s, m: {})
    assert project.columns.notes["ext"] == "columns unknown: an external table without `columns:`"
    with pytest.raises(ProjectError) as exc:
        load_project(tree, last_built=last_built)
    assert asked == [["ext"]]  # calc declares columns: they say it, not its build
    origin = (
        " [the columns of ext (commit abc1234def, built 2026-12-03 10:00 UTC) are from the last build, "
        "not the code: declare `columns:` there, or build it again if it changed]"
    )
    assert [str(i) for i in exc.value.issues] == [
        "models.yml:7 [down]: column 'regin' is not in ext (columns: order_id, region); did you mean "
        "'region'?" + origin,
        "models.yml:9 [down]: checks: relationship field 'order_ident' is not a column of ext"
        "; did you mean 'order_id'?" + origin,
    ]


def test_the_last_builds_columns_are_read_from_a_postgresql_catalog(
    make_repo, postgres_db, monkeypatch, capsys, tmp_path
):
    from gitops_data.engines import open_warehouse
    from gitops_data.plan import BuildRecord
    from gitops_data.project.schema import Settings
    from gitops_data.warehouse.catalog import Catalog, now

    monkeypatch.chdir(tmp_path)
    files = dict(LAST_BUILD_FILES)
    files["models.yml"] = files["models.yml"].replace("             amount\n", "             amout\n")
    repo = make_repo(files)
    with open_warehouse(postgres_db) as engine:
        record = BuildRecord("b1", "calc", "fp", "calc__fp", "c0ffee1234", None, 2, now())
        columns = {"order_id": "BIGINT", "customer_id": "BIGINT", "amount": "DOUBLE", "status": "VARCHAR"}
        Catalog(engine, Settings().meta_schema).record_build(record, "python", "main", columns)
    code, out, err = _cli(monkeypatch, capsys, repo, "--warehouse", postgres_db, "validate")
    assert code == 2
    assert "models.yml:10 [down]: column 'amout' is not in calc" in err
    assert "did you mean 'amount'? [the columns of calc (commit c0ffee1234, built " in err


def test_a_spark_warehouses_last_builds_are_read_from_its_catalog_store(tmp_path, monkeypatch):
    """Spark keeps its catalog apart: validate reads that store and never connects to Spark."""
    from gitops_data.project.schema import Settings
    from gitops_data.warehouse.last_build import LastBuildReader

    monkeypatch.setenv("GITOPS_DATA_CATALOG", str(tmp_path / "no-catalog-yet.duckdb"))
    reader = LastBuildReader("sc://127.0.0.1:1")
    assert reader(Settings(), ["calc"]) == {}
    assert reader.note is None  # no store file: nothing to read, nothing to say
    assert not (tmp_path / "no-catalog-yet.duckdb").exists()
