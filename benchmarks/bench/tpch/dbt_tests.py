"""The dbt tests of the TPC-H project's dbt variant: dbt's four generic tests (not_null and unique on
keys, accepted_values on codes, relationships between layers) on the built models of every layer,
as `data_tests:` in one schema.yml per layer folder, and each test's query as dbt compiles it
(dbt-core 1.11's default test macros inside its `get_test_sql` wrapper), for the raw side."""

from __future__ import annotations

from dataclasses import dataclass

from bench.tpch.models import Model

SEGMENTS = ("AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY")
SHIP_MODES = ("AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK")
REGIONS = ("AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST")
TIERS = ("gold", "standard", "overdrawn")
RETURN_FLAGS = ("A", "N", "R")


@dataclass(frozen=True)
class Test:
    model: str
    column: str
    kind: str  # not_null | unique | accepted_values | relationships
    values: tuple[str, ...] = ()  # accepted_values
    to: str = ""  # relationships: the parent model and its column
    field: str = ""

    @property
    def name(self) -> str:
        """dbt's name for it (the values of accepted_values and the parent of relationships
        included, as dbt names them)."""
        if self.kind == "accepted_values":
            return f"accepted_values_{self.model}_{self.column}__" + "__".join(self.values)
        if self.kind == "relationships":
            return f"relationships_{self.model}_{self.column}__{self.field}__ref_{self.to}_"
        return f"{self.kind}_{self.model}_{self.column}"

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.model, self.to) if self.to else (self.model,)

    def yaml(self) -> list[str]:
        """Its entry under the column's `data_tests:` (arguments in dbt 1.10+'s `arguments:`)."""
        if self.kind == "accepted_values":
            values = f"                values: {list(self.values)}"
            return [f"          - accepted_values:\n              arguments:\n{values}"]
        if self.kind == "relationships":
            return [
                "          - relationships:\n              arguments:\n"
                f"                to: ref('{self.to}')\n                field: {self.field}"
            ]
        return [f"          - {self.kind}"]

    def compiled(self) -> str:
        """The query dbt runs for it, models named plainly (as the raw side creates them)."""
        c, m = self.column, self.model
        if self.kind == "not_null":
            main = f"select {c}\nfrom {m}\nwhere {c} is null"
        elif self.kind == "unique":
            main = (
                f"select\n    {c} as unique_field,\n    count(*) as n_records\n\nfrom {m}\n"
                f"where {c} is not null\ngroup by {c}\nhaving count(*) > 1"
            )
        elif self.kind == "accepted_values":
            listed = ",\n        ".join(f"'{v}'" for v in self.values)
            main = (
                f"with all_values as (\n    select\n        {c} as value_field,\n"
                "        count(*) as n_records\n"
                f"    from {m}\n    group by {c}\n)\nselect *\nfrom all_values\n"
                f"where value_field not in (\n        {listed}\n)"
            )
        else:
            main = (
                f"with child as (\n    select {c} as from_field\n    from {m}\n"
                f"    where {c} is not null\n),\n"
                f"parent as (\n    select {self.field} as to_field\n    from {self.to}\n)\n"
                "select\n    from_field\nfrom child\nleft join parent\n"
                "    on child.from_field = parent.to_field\nwhere parent.to_field is null"
            )
        return (
            "select\n      count(*) as failures,\n      count(*) != 0 as should_warn,\n"
            f"      count(*) != 0 as should_error\n    from (\n{main}\n    ) dbt_internal_test"
        )


def _keys(model: str, column: str) -> list[Test]:
    return [Test(model, column, "not_null"), Test(model, column, "unique")]


TESTS: list[Test] = [
    # staging
    *_keys("stg_region", "r_regionkey"),
    *_keys("stg_nation", "n_nationkey"),
    Test("stg_nation", "n_regionkey", "relationships", to="stg_region", field="r_regionkey"),
    *_keys("stg_supplier", "s_suppkey"),
    *_keys("stg_customer", "c_custkey"),
    Test("stg_customer", "c_mktsegment", "accepted_values", SEGMENTS),
    *_keys("stg_part", "p_partkey"),
    Test("stg_partsupp", "ps_partkey", "not_null"),
    *_keys("stg_orders", "o_orderkey"),
    Test("stg_orders", "o_orderstatus", "accepted_values", ("F", "O", "P")),
    Test("stg_orders", "o_custkey", "relationships", to="stg_customer", field="c_custkey"),
    Test("stg_lineitem", "l_orderkey", "not_null"),
    Test("stg_lineitem", "l_returnflag", "accepted_values", RETURN_FLAGS),
    Test("stg_lineitem", "l_linestatus", "accepted_values", ("F", "O")),
    # warehouse
    *_keys("dim_nation", "nation_key"),
    Test("dim_nation", "region", "accepted_values", REGIONS),
    *_keys("dim_customer", "customer_key"),
    Test("dim_customer", "customer_tier", "accepted_values", TIERS),
    *_keys("dim_supplier", "supplier_key"),
    *_keys("dim_part", "part_key"),
    *_keys("dim_date", "date_day"),
    *_keys("fct_orders", "order_key"),
    Test("fct_orders", "customer_key", "relationships", to="dim_customer", field="customer_key"),
    Test("fct_lineitem", "order_key", "relationships", to="fct_orders", field="order_key"),
    Test("fct_lineitem", "ship_mode", "accepted_values", SHIP_MODES),
    Test("fct_partsupp", "part_key", "relationships", to="dim_part", field="part_key"),
    # intermediate (views: a test runs the view's query)
    *_keys("int_customer_value", "customer_key"),
    Test("int_monthly_sales", "month", "unique"),
    Test("int_supplier_revenue", "supplier_key", "unique"),
    # reports and TPC-H answers
    *_keys("rpt_monthly_revenue", "month"),
    Test("rpt_top_customers", "customer_key", "unique"),
    Test("rpt_customer_tiers", "customer_tier", "accepted_values", TIERS),
    Test("rpt_supplier_scorecard", "supplier_key", "relationships", to="dim_supplier", field="supplier_key"),
    Test("rpt_late_shipments", "ship_mode", "unique"),
    Test("tpch_q01", "l_returnflag", "accepted_values", RETURN_FLAGS),
    Test("tpch_q04", "o_orderpriority", "unique"),
    Test("tpch_q05", "n_name", "not_null"),
]


def schema_files(ms: list[Model], tests: list[Test] = TESTS) -> dict[str, str]:
    """models/<layer>/schema.yml for each layer that has tests: the tested models, their columns'
    data_tests."""
    layer = {m.name: m.layer for m in ms}
    files: dict[str, list[str]] = {}
    for model in dict.fromkeys(t.model for t in tests):
        lines = files.setdefault(layer[model], ["version: 2", "", "models:"])
        lines.append(f"  - name: {model}\n    columns:")
        for column in dict.fromkeys(t.column for t in tests if t.model == model):
            lines.append(f"      - name: {column}\n        data_tests:")
            lines += [y for t in tests if t.model == model and t.column == column for y in t.yaml()]
    return {f"models/{name}/schema.yml": "\n".join(lines) + "\n" for name, lines in files.items()}
