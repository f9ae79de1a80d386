"""The TPC-H project: 70 SQL models in four layers over the 8 TPC-H tables, as a dbt project would
have them.

| layer | models | materialized | how it is declared |
| --- | --- | --- | --- |
| base | 8 `base_*`: casts over the sources | ephemeral | file default `defaults: {materialized: ephemeral}` |
| staging | 8 `stg_*`: the TPC-H tables plus derived columns | table | the default |
| warehouse | 8 dims and facts | table | the default (`fct_lineitem` says `materialized: table`) |
| intermediate | 12 `int_*` | view | tag `intermediate`, settings `materialized_by_tag` |
| reports | 12 `rpt_*` + the 22 TPC-H queries `tpch_q01` .. `tpch_q22` | table | the default |

Model SQL names other models by plain name (DuckDB dialect); the sources are warehouse tables
`main.<tpch table>` (loaded before the first build, outside every timed step)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.tpch.queries import queries

TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]
SOURCE_SCHEMA = "main"
EXTERNAL_SCHEMA = "analytics"


@dataclass(frozen=True)
class Model:
    name: str
    layer: str  # base | staging | warehouse | intermediate | reports | tpch
    sql: str
    materialized: str  # table | view | ephemeral

    @property
    def built(self) -> bool:
        return self.materialized != "ephemeral"


def _casts(table: str, columns: list[tuple[str, str]]) -> str:
    return "select " + ", ".join(f"cast({c} as {t}) as {c}" for c, t in columns) + f" from {table}"


DEC = "decimal(15, 2)"
BASE = [
    (
        "base_region",
        _casts("region", [("r_regionkey", "integer"), ("r_name", "varchar"), ("r_comment", "varchar")]),
    ),
    (
        "base_nation",
        _casts(
            "nation",
            [
                ("n_nationkey", "integer"),
                ("n_name", "varchar"),
                ("n_regionkey", "integer"),
                ("n_comment", "varchar"),
            ],
        ),
    ),
    (
        "base_supplier",
        _casts(
            "supplier",
            [
                ("s_suppkey", "integer"),
                ("s_name", "varchar"),
                ("s_address", "varchar"),
                ("s_nationkey", "integer"),
                ("s_phone", "varchar"),
                ("s_acctbal", DEC),
                ("s_comment", "varchar"),
            ],
        ),
    ),
    (
        "base_customer",
        _casts(
            "customer",
            [
                ("c_custkey", "integer"),
                ("c_name", "varchar"),
                ("c_address", "varchar"),
                ("c_nationkey", "integer"),
                ("c_phone", "varchar"),
                ("c_acctbal", DEC),
                ("c_mktsegment", "varchar"),
                ("c_comment", "varchar"),
            ],
        ),
    ),
    (
        "base_part",
        _casts(
            "part",
            [
                ("p_partkey", "integer"),
                ("p_name", "varchar"),
                ("p_mfgr", "varchar"),
                ("p_brand", "varchar"),
                ("p_type", "varchar"),
                ("p_size", "integer"),
                ("p_container", "varchar"),
                ("p_retailprice", DEC),
                ("p_comment", "varchar"),
            ],
        ),
    ),
    (
        "base_partsupp",
        _casts(
            "partsupp",
            [
                ("ps_partkey", "integer"),
                ("ps_suppkey", "integer"),
                ("ps_availqty", "integer"),
                ("ps_supplycost", DEC),
                ("ps_comment", "varchar"),
            ],
        ),
    ),
    (
        "base_orders",
        _casts(
            "orders",
            [
                ("o_orderkey", "bigint"),
                ("o_custkey", "integer"),
                ("o_orderstatus", "varchar"),
                ("o_totalprice", DEC),
                ("o_orderdate", "date"),
                ("o_orderpriority", "varchar"),
                ("o_clerk", "varchar"),
                ("o_shippriority", "integer"),
                ("o_comment", "varchar"),
            ],
        ),
    ),
    (
        "base_lineitem",
        _casts(
            "lineitem",
            [
                ("l_orderkey", "bigint"),
                ("l_partkey", "integer"),
                ("l_suppkey", "integer"),
                ("l_linenumber", "integer"),
                ("l_quantity", DEC),
                ("l_extendedprice", DEC),
                ("l_discount", DEC),
                ("l_tax", DEC),
                ("l_returnflag", "varchar"),
                ("l_linestatus", "varchar"),
                ("l_shipdate", "date"),
                ("l_commitdate", "date"),
                ("l_receiptdate", "date"),
                ("l_shipinstruct", "varchar"),
                ("l_shipmode", "varchar"),
                ("l_comment", "varchar"),
            ],
        ),
    ),
]

STAGING = [
    ("stg_region", "select r_regionkey, r_name, r_comment from base_region"),
    ("stg_nation", "select n_nationkey, n_name, n_regionkey, n_comment from base_nation"),
    (
        "stg_supplier",
        "select s_suppkey, s_name, s_address, s_nationkey, s_phone, s_acctbal, s_comment from base_supplier",
    ),
    (
        "stg_customer",
        "select c_custkey, c_name, c_address, c_nationkey, c_phone, c_acctbal, c_mktsegment, c_comment, "
        "substring(c_phone, 1, 2) as c_country_code from base_customer",
    ),
    (
        "stg_part",
        "select p_partkey, p_name, p_mfgr, p_brand, p_type, p_size, p_container, p_retailprice, p_comment, "
        "split_part(p_type, ' ', 3) as p_material from base_part",
    ),
    (
        "stg_partsupp",
        "select ps_partkey, ps_suppkey, ps_availqty, ps_supplycost, ps_comment, "
        "ps_availqty * ps_supplycost as ps_inventory_value from base_partsupp",
    ),
    (
        "stg_orders",
        "select o_orderkey, o_custkey, o_orderstatus, o_totalprice, o_orderdate, o_orderpriority, o_clerk, "
        "o_shippriority, o_comment, year(o_orderdate) as o_year from base_orders",
    ),
    (
        "stg_lineitem",
        "select l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_discount, "
        "l_tax, "
        "l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, "
        "l_comment, l_extendedprice * (1 - l_discount) as l_net_revenue, "
        "l_receiptdate > l_commitdate as l_is_late from base_lineitem",
    ),
]

BREAKING_MODEL = "dim_customer"  # the breaking change moves its tier thresholds
TIER_RULE = "when c.c_acctbal >= 5000 then 'gold'"
TIER_RULE_CHANGED = "when c.c_acctbal >= 4000 then 'gold'"
ADDITIVE_MODEL = "dim_supplier"  # the additive change appends a column no downstream model reads
SUPPLIER_COLUMNS = "s.s_suppkey as supplier_key, s.s_name as supplier_name, s.s_acctbal as supplier_balance"
ADDED_COLUMN = "substring(s.s_phone, 1, 2) as supplier_phone_prefix"

WAREHOUSE = [
    (
        "dim_nation",
        "select n.n_nationkey as nation_key, n.n_name as nation, r.r_name as region "
        "from stg_nation n join stg_region r on n.n_regionkey = r.r_regionkey",
    ),
    (
        "dim_customer",
        "select c.c_custkey as customer_key, c.c_name as customer_name, c.c_mktsegment as market_segment, "
        "c.c_acctbal as account_balance, c.c_country_code as country_code, n.nation, n.region, "
        f"case {TIER_RULE} when c.c_acctbal >= 0 then 'standard' else 'overdrawn' end as customer_tier "
        "from stg_customer c join dim_nation n on c.c_nationkey = n.nation_key",
    ),
    (
        "dim_supplier",
        f"select {SUPPLIER_COLUMNS}, n.nation, n.region "
        "from stg_supplier s join dim_nation n on s.s_nationkey = n.nation_key",
    ),
    (
        "dim_part",
        "select p_partkey as part_key, p_name as part_name, p_mfgr as manufacturer, p_brand as brand, "
        "p_type as part_type, p_size as part_size, p_container as container, p_retailprice as retail_price, "
        "p_material as material from stg_part",
    ),
    (
        "dim_date",
        "select cast(d as date) as date_day, year(d) as year, quarter(d) as quarter, month(d) as month, "
        "dayofweek(d) as day_of_week, dayofweek(d) in (0, 6) as is_weekend "
        "from range(date '1992-01-01', date '1999-01-01', interval 1 day) t(d)",
    ),
    (
        "fct_orders",
        "select o.o_orderkey as order_key, o.o_custkey as customer_key, o.o_orderdate as order_date, "
        "o.o_orderstatus as order_status, o.o_orderpriority as order_priority, "
        "o.o_totalprice as total_price, "
        "l.line_count, l.gross_revenue, l.net_revenue, l.late_lines "
        "from stg_orders o join (select l_orderkey, count(*) as line_count, "
        "sum(l_extendedprice) as gross_revenue, sum(l_net_revenue) as net_revenue, "
        "count(*) filter (where l_is_late) as late_lines from stg_lineitem group by l_orderkey) l "
        "on l.l_orderkey = o.o_orderkey",
    ),
    (
        "fct_lineitem",
        "select l.l_orderkey as order_key, l.l_linenumber as line_number, o.o_custkey as customer_key, "
        "l.l_partkey as part_key, l.l_suppkey as supplier_key, o.o_orderdate as order_date, "
        "l.l_shipdate as ship_date, l.l_commitdate as commit_date, l.l_receiptdate as receipt_date, "
        "l.l_quantity as quantity, l.l_extendedprice as gross_amount, l.l_discount as discount, "
        "l.l_tax as tax, "
        "l.l_net_revenue as net_revenue, l.l_net_revenue * (1 + l.l_tax) as charged_amount, "
        "l.l_returnflag as return_flag, l.l_linestatus as line_status, l.l_shipmode as ship_mode, "
        "l.l_is_late as is_late from stg_lineitem l join stg_orders o on l.l_orderkey = o.o_orderkey",
    ),
    (
        "fct_partsupp",
        "select ps_partkey as part_key, ps_suppkey as supplier_key, ps_availqty as available_qty, "
        "ps_supplycost as supply_cost, ps_inventory_value as inventory_value from stg_partsupp",
    ),
]

INTERMEDIATE = [
    (
        "int_lineitem_enriched",
        "select f.order_key, f.line_number, f.order_date, f.ship_mode, f.net_revenue, f.quantity, f.is_late, "
        "f.return_flag, c.market_segment, c.nation as customer_nation, c.region as customer_region, "
        "s.nation as supplier_nation, p.brand, p.part_type, p.material "
        "from fct_lineitem f join dim_customer c on f.customer_key = c.customer_key "
        "join dim_supplier s on f.supplier_key = s.supplier_key join dim_part p on f.part_key = p.part_key",
    ),
    (
        "int_order_summary",
        "select o.order_key, o.order_date, year(o.order_date) as order_year, o.order_priority, "
        "o.net_revenue, "
        "o.line_count, o.late_lines, c.market_segment, c.nation, c.region, c.customer_tier "
        "from fct_orders o join dim_customer c on o.customer_key = c.customer_key",
    ),
    (
        "int_customer_orders",
        "select customer_key, count(*) as orders, sum(net_revenue) as lifetime_revenue, "
        "min(order_date) as first_order, max(order_date) as last_order from fct_orders group by customer_key",
    ),
    (
        "int_supplier_revenue",
        "select supplier_key, sum(net_revenue) as revenue, sum(quantity) as quantity, "
        "count(*) filter (where is_late) as late_lines, count(*) as lines "
        "from fct_lineitem group by supplier_key",
    ),
    (
        "int_part_sales",
        "select part_key, sum(quantity) as quantity, sum(net_revenue) as revenue, "
        "count(distinct order_key) as orders from fct_lineitem group by part_key",
    ),
    (
        "int_monthly_sales",
        "select date_trunc('month', order_date) as month, sum(net_revenue) as revenue, "
        "count(distinct order_key) as orders, sum(quantity) as quantity from fct_lineitem group by 1",
    ),
    (
        "int_returns",
        "select part_key, supplier_key, count(*) filter (where return_flag = 'R') as returned_lines, "
        "count(*) as lines, "
        "coalesce(sum(net_revenue) filter (where return_flag = 'R'), 0) as returned_revenue "
        "from fct_lineitem group by part_key, supplier_key",
    ),
    (
        "int_shipping_times",
        "select order_key, line_number, ship_mode, ship_date - order_date as days_to_ship, "
        "receipt_date - commit_date as days_late from fct_lineitem",
    ),
    (
        "int_part_costs",
        "select ps.part_key, ps.supplier_key, ps.supply_cost, p.retail_price, "
        "p.retail_price - ps.supply_cost as unit_margin, p.brand, s.nation as supplier_nation "
        "from fct_partsupp ps join dim_part p on ps.part_key = p.part_key "
        "join dim_supplier s on ps.supplier_key = s.supplier_key",
    ),
    (
        "int_nation_sales",
        "select customer_nation, supplier_nation, year(order_date) as year, sum(net_revenue) as revenue "
        "from int_lineitem_enriched group by customer_nation, supplier_nation, year(order_date)",
    ),
    (
        "int_order_dates",
        "select o.order_key, o.order_date, d.year, d.quarter, d.month, d.day_of_week, d.is_weekend "
        "from fct_orders o join dim_date d on o.order_date = d.date_day",
    ),
    (
        "int_customer_value",
        "select c.customer_key, c.customer_name, c.market_segment, c.nation, c.customer_tier, "
        "coalesce(co.orders, 0) as orders, coalesce(co.lifetime_revenue, 0) as lifetime_revenue, "
        "co.first_order, co.last_order "
        "from dim_customer c left join int_customer_orders co on c.customer_key = co.customer_key",
    ),
]

REPORTS = [
    (
        "rpt_monthly_revenue",
        "select month, revenue, orders, revenue / orders as avg_order_value, "
        "sum(revenue) over (order by month) as cumulative_revenue from int_monthly_sales",
    ),
    (
        "rpt_yearly_segment_revenue",
        "select order_year, market_segment, sum(net_revenue) as revenue, count(*) as orders "
        "from int_order_summary group by order_year, market_segment",
    ),
    (
        "rpt_top_customers",
        "select customer_key, customer_name, nation, lifetime_revenue from int_customer_value "
        "order by lifetime_revenue desc, customer_key limit 100",
    ),
    (
        "rpt_customer_tiers",
        "select customer_tier, market_segment, count(*) as customers, avg(lifetime_revenue) as avg_revenue "
        "from int_customer_value group by customer_tier, market_segment",
    ),
    (
        "rpt_supplier_scorecard",
        "select s.supplier_key, s.supplier_name, s.nation, r.revenue, r.late_lines / r.lines as late_share "
        "from dim_supplier s join int_supplier_revenue r on s.supplier_key = r.supplier_key",
    ),
    (
        "rpt_late_shipments",
        "select ship_mode, count(*) as lines, avg(days_to_ship) as avg_days_to_ship, "
        "count(*) filter (where days_late > 0) as late_lines from int_shipping_times group by ship_mode",
    ),
    (
        "rpt_return_rates",
        "select p.part_type, sum(r.returned_lines) / sum(r.lines) as return_rate, "
        "sum(r.returned_revenue) as returned_revenue "
        "from int_returns r join dim_part p on r.part_key = p.part_key group by p.part_type",
    ),
    (
        "rpt_order_priority_mix",
        "select order_year, order_priority, count(*) as orders, sum(late_lines) as late_lines "
        "from int_order_summary group by order_year, order_priority",
    ),
    (
        "rpt_brand_margin",
        "select brand, avg(unit_margin) as avg_unit_margin, min(unit_margin) as min_unit_margin, "
        "count(distinct supplier_key) as suppliers from int_part_costs group by brand",
    ),
    (
        "rpt_trade_flows",
        "select customer_nation, supplier_nation, sum(revenue) as revenue "
        "from int_nation_sales group by customer_nation, supplier_nation",
    ),
    (
        "rpt_weekday_orders",
        "select day_of_week, is_weekend, count(*) as orders "
        "from int_order_dates group by day_of_week, is_weekend",
    ),
    (
        "rpt_kpis",
        "select (select sum(revenue) from int_monthly_sales) as revenue, "
        "(select count(*) from fct_orders) as orders, (select count(*) from dim_customer) as customers, "
        "(select avg(late_share) from rpt_supplier_scorecard) as avg_late_share, "
        "(select count(*) from int_part_sales) as parts_sold",
    ),
]


def models(scale_factor: float) -> list[Model]:
    """Every model, in dependency order."""
    out = [Model(n, "base", s, "ephemeral") for n, s in BASE]
    out += [Model(n, "staging", s, "table") for n, s in STAGING]
    out += [Model(n, "warehouse", s, "table") for n, s in WAREHOUSE]
    out += [Model(n, "intermediate", s, "view") for n, s in INTERMEDIATE]
    out += [Model(n, "reports", s, "table") for n, s in REPORTS]
    out += [Model(n, "tpch", s, "table") for n, s in queries(scale_factor)]
    return out


def breaking(ms: list[Model]) -> list[Model]:
    """The breaking change: `dim_customer`'s gold tier starts at 4000 instead of 5000."""
    return [
        replace(m, sql=m.sql.replace(TIER_RULE, TIER_RULE_CHANGED)) if m.name == BREAKING_MODEL else m
        for m in ms
    ]


def additive(ms: list[Model]) -> list[Model]:
    """The additive change: `dim_supplier` gains a column that no downstream model reads."""
    new = f"{SUPPLIER_COLUMNS}, {ADDED_COLUMN}"
    return [
        replace(m, sql=m.sql.replace(SUPPLIER_COLUMNS, new)) if m.name == ADDITIVE_MODEL else m for m in ms
    ]


# -- dependencies, read from the SQL with sqlglot (the same parser gitops-data uses) ------------------


def _tables(sql: str):
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, dialect="duckdb")
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return tree, [t for t in tree.find_all(exp.Table) if t.name and not t.db and t.name.lower() not in ctes]


def deps(ms: list[Model]) -> dict[str, set[str]]:
    """Each model's upstream models and sources."""
    names = {m.name for m in ms} | set(TABLES)
    return {m.name: {t.name.lower() for t in _tables(m.sql)[1] if t.name.lower() in names} for m in ms}


def downstream(ms: list[Model], changed: set[str]) -> set[str]:
    """`changed` and every model that reads them, directly or not."""
    up = deps(ms)
    out = set(changed)
    for m in ms:  # dependency order
        if up[m.name] & out:
            out.add(m.name)
    return out


def rewritten(sql: str, swap) -> str:
    """`sql` with each table that `swap(name)` maps to an expression replaced (alias kept)."""
    from sqlglot import exp

    tree, tables = _tables(sql)
    for t in tables:
        new = swap(t.name.lower())
        if new is None:
            continue
        alias = t.args.get("alias") or exp.TableAlias(this=exp.to_identifier(t.name))
        new.set("alias", alias)
        t.replace(new)
    return tree.sql(dialect="duckdb")


def raw_named(ms: list[Model], only: set[str] | None = None, replace_: bool = False) -> list[tuple[str, str]]:
    """(model, CREATE TABLE / CREATE VIEW statement) of the built models (of `only`, when given), in
    dependency order, each ephemeral model inlined as a subquery where it is read. Sources are the
    tables `main.<name>`, models are created in the connection's default schema."""
    import sqlglot
    from sqlglot import exp

    inline: dict[str, str] = {}

    def swap(name: str):
        if name in inline:
            return exp.Subquery(this=sqlglot.parse_one(inline[name], dialect="duckdb"))
        return None

    out = []
    verb = "create or replace" if replace_ else "create"
    for m in ms:
        body = rewritten(m.sql, swap)
        if not m.built:
            inline[m.name] = body
        elif only is None or m.name in only:
            out.append((m.name, f"{verb} {m.materialized} {m.name} as {body}"))
    return out


def raw_statements(ms: list[Model], only: set[str] | None = None, replace_: bool = False) -> list[str]:
    """The statements of `raw_named`, in dependency order."""
    return [sql for _, sql in raw_named(ms, only, replace_)]


def built_upstream(ms: list[Model]) -> dict[str, set[str]]:
    """Each built model's upstream built models (through the ephemeral models it inlines)."""
    up, kind = deps(ms), {m.name: m for m in ms}
    out: dict[str, set[str]] = {}
    for m in ms:  # dependency order
        reads = {d for d in up[m.name] if d in kind}
        out[m.name] = {d for d in reads if kind[d].built} | {
            u for d in reads if not kind[d].built for u in out[d]
        }
    return {n: v for n, v in out.items() if kind[n].built}


# -- the gitops-data project ---------------------------------------------------------------------------


def _yaml_models(ms: list[Model], extra: str = "") -> str:
    lines = ["models:"]
    for m in ms:
        lines.append(f"  - name: {m.name}")
        if m.name == "fct_lineitem":
            lines.append("    materialized: table")
        if m.layer == "intermediate":
            lines.append("    tags: [intermediate]")
        lines.append("    sql: |")
        lines += [f"      {line}".rstrip() for line in m.sql.splitlines()]
    return extra + "\n".join(lines) + "\n"


def project_files(ms: list[Model]) -> dict[str, str]:
    """The data repo: settings, sources, one YAML file per layer."""
    by_layer = {layer: [m for m in ms if m.layer == layer] for layer in dict.fromkeys(m.layer for m in ms)}
    files = {
        "gitops_data.yaml": f"name: tpch\nexternal_schema: {EXTERNAL_SCHEMA}\n"
        "materialized_by_tag: {intermediate: view}\n",
        "sources.yml": "sources:\n"
        + "".join(f"  - name: {t}\n    table: {SOURCE_SCHEMA}.{t}\n" for t in TABLES),
    }
    for layer, group in by_layer.items():
        extra = "defaults: {materialized: ephemeral}\n" if layer == "base" else ""
        files[f"models/{layer}.yml"] = _yaml_models(group, extra)
    return files


# -- the dbt project -----------------------------------------------------------------------------------

DBT_SOURCE = "tpch"


def dbt_model_file(m: Model, names: set[str]) -> str:
    """One dbt model: config block + the same SQL with `ref()` / `source()` for the names it reads."""
    from sqlglot import exp

    def swap(name: str):
        if name in TABLES:
            return exp.to_table(f"__source__{name}")
        return exp.to_table(f"__ref__{name}") if name in names else None

    body = rewritten(m.sql, swap)
    for name in sorted(names | set(TABLES), key=len, reverse=True):
        body = body.replace(f"__source__{name}", f"{{{{ source('{DBT_SOURCE}', '{name}') }}}}")
        body = body.replace(f"__ref__{name}", f"{{{{ ref('{name}') }}}}")
    return f"{{{{ config(materialized='{m.materialized}') }}}}\n\n{body}\n"


def dbt_project_files(ms: list[Model], warehouse: str, threads: int = 2) -> dict[str, str]:
    """dbt_project.yml, profiles.yml (targets prod -> schema main, dev -> schema dev), sources and
    one .sql file per model (models/<layer>/<name>.sql)."""
    names = {m.name for m in ms}
    files = {
        "dbt_project.yml": "name: tpch\nversion: '1.0'\nconfig-version: 2\nprofile: tpch\n"
        "model-paths: [models]\n",
        "profiles.yml": "tpch:\n  target: prod\n  outputs:\n"
        + "".join(
            f"    {target}:\n      type: duckdb\n      path: {warehouse}\n      schema: {schema}\n"
            f"      threads: {threads}\n"
            for target, schema in (("prod", "main"), ("dev", "dev"))
        ),
        "models/sources.yml": f"version: 2\nsources:\n  - name: {DBT_SOURCE}\n    schema: {SOURCE_SCHEMA}\n"
        "    tables:\n" + "".join(f"      - name: {t}\n" for t in TABLES),
    }
    for m in ms:
        files[dbt_path(m)] = dbt_model_file(m, names)
    return files


def dbt_path(m: Model) -> str:
    return f"models/{m.layer}/{m.name}.sql"
