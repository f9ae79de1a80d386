"""The dbt surface real projects use, each in a small dbt project written here by hand: packages
with models, alias, fail_calc / warn_if / error_if, configs that disable a model, byte-order marks,
unit tests, other tools' YAML, run_started_at / invocation_id, constant statements, tests on
ephemeral models, singular tests that ref nothing, hooks. Loaded (fast), and built where the
result depends on the build (DuckDB)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gitops_data.errors import ProjectError
from gitops_data.project.checks import declared_checks
from gitops_data.project.loader import load_project
from gitops_data.project.tree import DirTree

PROJECT = "name: shop\nprofile: shop\n"


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text))
    return root


def load(tmp_path: Path, files: dict[str, str | bytes], target: str = "duckdb"):
    return load_project(DirTree(str(write(tmp_path, {"dbt_project.yml": PROJECT, **files}))), target)


def issues(tmp_path: Path, files: dict[str, str | bytes]) -> list:
    with pytest.raises(ProjectError) as exc:
        load(tmp_path, files)
    return exc.value.issues


def sql_of(project, name: str) -> str:
    return " ".join((project.nodes[name].sql or "").split())


# --- packages with models ---------------------------------------------------------------------

PACKAGE = {
    "dbt_packages/crm/dbt_project.yml": (
        "name: crm\nvars: {crm_min: 1}\nmodels:\n  crm:\n    +materialized: table\n"
    ),
    "dbt_packages/crm/seeds/crm_accounts.csv": "id,name\n1,a\n2,b\n3,c\n",
    "dbt_packages/crm/models/crm_active.sql": (
        "select * from {{ ref('crm_accounts') }} where id >= {{ var('crm_min') }} and {{ crm_flag() }}\n"
    ),
    "dbt_packages/crm/models/staging/crm_unused.sql": "select 1 as x\n",
    "dbt_packages/crm/models/schema.yml": (
        "version: 2\nmodels:\n  - name: crm_active\n    columns:\n      - name: id\n"
        "        data_tests: [unique, not_null]\n"
    ),
    "dbt_packages/crm/macros/flag.sql": "{% macro crm_flag() %}true{% endmacro %}\n",
    "models/report.sql": "select count(*) as n from {{ ref('crm', 'crm_active') }}\n",
}


def test_a_package_with_models_loads_them_like_dbt(tmp_path):
    project = load(
        tmp_path,
        {
            **PACKAGE,
            "dbt_project.yml": PROJECT
            + "vars:\n  crm: {crm_min: 2}\nmodels:\n  crm:\n    staging:\n      +enabled: false\n",
        },
    )
    active = project.nodes["crm_active"]
    assert active.materialized == "table"  # the package's own config tree
    assert (
        sql_of(project, "crm_active") == "select * from crm_accounts where id >= 2 and true"
    )  # root vars win
    assert project.nodes["crm_accounts"].kind == "seed"
    assert "crm_unused" not in project.nodes  # disabled from the root project
    assert project.nodes["report"].deps == ("crm_active",)
    assert {c.kind for c in declared_checks(active)} == {"not_null", "unique"}


# --- tests as dbt judges them ---------------------------------------------------------------------


def _checks(project, name: str) -> dict[str, tuple[str, str]]:
    return {
        c.name: (c.severity, " ".join(c.args["sql"].split()).lower())
        for c in declared_checks(project.nodes[name])
        if c.kind == "returns_no_rows"
    }


def _outcomes(project, root: Path, name: str) -> dict[str, tuple[str, bool]]:
    """check -> (severity, passed), the seeds loaded into an in-memory DuckDB under their names."""
    import duckdb

    con = duckdb.connect()
    for node in project.nodes.values():
        if node.kind == "seed":
            con.execute(
                f"create table {node.name} as select * from read_csv('{root / (node.data_path or '')}')"
            )
    return {
        check: (severity, not con.execute(sql).fetchall())
        for check, (severity, sql) in _checks(project, name).items()
    }


def test_fail_calc_set_inside_a_generic_test_macro_is_honoured(tmp_path):
    project = load(
        tmp_path,
        {
            "seeds/nums.csv": "id\n1\n2\n",
            "macros/same_count.sql": (
                "{% test same_count(model, compare_model) %}\n"
                "{{ config(fail_calc='sum(coalesce(diff, 0))') }}\n"
                "select abs((select count(*) from {{ model }})\n"
                "  - (select count(*) from {{ compare_model }})) as diff\n"
                "{% endtest %}\n"
            ),
            "seeds/schema.yml": (
                "version: 2\nseeds:\n  - name: nums\n    data_tests:\n"
                "      - same_count: {compare_model: ref('nums')}\n"
            ),
        },
    )
    # the query returns one row (diff = 0): with count(*) it would fail, with the macro's fail_calc it passes
    assert _outcomes(project, tmp_path, "nums") == {
        "same_count": ("error", True),
        "same_count__warn": ("warn", True),
    }


def test_warn_if_error_if_and_limit_become_two_judged_checks(tmp_path):
    project = load(
        tmp_path,
        {
            "seeds/nums.csv": "id\n1\n2\n3\n",
            "seeds/schema.yml": (
                "version: 2\nseeds:\n  - name: nums\n    columns:\n      - name: id\n        data_tests:\n"
                "          - accepted_values:\n              values: [1]\n"
                "              config: {warn_if: '>0', error_if: '>5', limit: 10}\n"
                "          - accepted_values:\n              name: unquoted\n"
                "              values: ['1 + 0', '2 * 1', 'least(3, 4)']\n              quote: false\n"
                "          - not_null:\n              config: {severity: warn, error_if: '>100'}\n"
            ),
        },
    )
    assert "limit 10" in _checks(project, "nums")["id__accepted_values"][1]
    assert _outcomes(project, tmp_path, "nums") == {
        "id__accepted_values": ("error", True),  # 2 rows fail: over warn_if, not over error_if
        "id__accepted_values__warn": ("warn", False),
        "unquoted": ("error", True),  # quote: false: the values are expressions
        "id__not_null": ("warn", True),
    }


@pytest.mark.parametrize(
    "config, message",
    [
        ("{warn_if: 'lots'}", "warn_if must be a comparison"),
        ("{limit: 'ten'}", "limit must be a whole number"),
    ],
)
def test_malformed_test_configs_are_validate_errors(tmp_path, config, message):
    found = issues(
        tmp_path,
        {
            "seeds/nums.csv": "id\n1\n",
            "seeds/schema.yml": (
                "version: 2\nseeds:\n  - name: nums\n    columns:\n      - name: id\n        data_tests:\n"
                f"          - not_null:\n              config: {config}\n"
            ),
        },
    )
    assert any(i.file == "seeds/schema.yml" and message in i.message for i in found), found


def test_jinja_in_test_arguments_and_configs_is_rendered(tmp_path):
    project = load(
        tmp_path,
        {
            "seeds/nums.csv": "id\n1\n",
            "seeds/schema.yml": (
                "version: 2\nseeds:\n  - name: nums\n    columns:\n      - name: id\n        data_tests:\n"
                "          - accepted_values:\n              values: ['{{ 1 + 1 }}']\n"
                "              config: {severity: \"{{ 'warn' if target.type == 'duckdb' else 'error' }}\"}\n"
            ),
        },
    )
    (check,) = [c for c in declared_checks(project.nodes["nums"]) if c.kind == "isin"]
    assert check.severity == "warn" and check.args == [2]


# --- the four silent ones -----------------------------------------------------------------------


def test_a_byte_order_mark_in_a_seed_header_is_not_part_of_the_column(tmp_path):
    project = load(
        tmp_path,
        {
            "seeds/raw.csv": b"\xef\xbb\xbfcolumn_one,b\n1,2\n",
            "macros/cols.sql": (
                "{% macro cols(rel) %}{% for c in adapter.get_columns_in_relation(rel) %}"
                '{{ c.quoted }}{{ "," if not loop.last }}{% endfor %}{% endmacro %}\n'
            ),
            "models/m.sql": "select {{ cols(ref('raw')) }} from {{ ref('raw') }}\n",
        },
    )
    assert sql_of(project, "m") == 'select "column_one","b" from raw'


def test_a_model_disabled_in_its_own_config_is_not_rendered_further(tmp_path):
    project = load(
        tmp_path,
        {
            "seeds/nums.csv": "id\n1\n",
            "models/only_snowflake.sql": (
                "{{ config(enabled=target.type == 'snowflake') }}\n"
                "select {{ exceptions.raise_compiler_error('only on snowflake') }}\n"
            ),
        },
    )
    assert "only_snowflake" not in project.nodes


def test_other_tools_yaml_is_ignored_in_a_dbt_project(tmp_path):
    project = load(
        tmp_path,
        {
            "seeds/nums.csv": "id\n1\n",
            "docker-compose.yml": "services:\n  db: {image: postgres}\n",
            "ci/profiles.yml": "shop:\n  target: dev\n",
            "Taskfile.yaml": "version: '3'\ntasks: {}\n",
            "schedules.yml": "schedules:\n  - name: nightly\n    cron: '0 3 * * *'\n    select: ['nums']\n",
        },
    )
    assert [s.name for s in project.schedules] == ["nightly"]


def test_the_yaml_setting_says_where_gitops_data_yaml_lives(tmp_path):
    found = issues(
        tmp_path,
        {
            "gitops_data.yaml": "name: shop\nyaml: [ops/]\n",
            "seeds/nums.csv": "id\n1\n",
            "schedules.yml": "schedules:\n  - name: ignored\n    cron: 'not read'\n",
            "ops/alerts.yml": "schedules:\n  - name: nightly\n    cron: 'nope'\n",
        },
    )
    assert [i.file for i in found] == ["ops/alerts.yml"], found


# --- alias and long names -----------------------------------------------------------------------

LONG = "customer_lifetime_value_by_acquisition_channel_and_first_order_month"  # 68 characters


def test_a_model_is_published_under_its_alias_and_refs_follow_it(tmp_path):
    project = load(
        tmp_path,
        {
            "seeds/nums.csv": "id\n1\n",
            f"models/{LONG}.sql": "{{ config(alias='clv_by_channel') }}\nselect id from {{ ref('nums') }}\n",
            "models/b.sql": f"select * from {{{{ ref('{LONG}') }}}}\n",
            "models/c.sql": "{{ config(alias='c_v2') }}\nselect '{{ this }}' as me\n",
            "models/schema.yml": (
                f"version: 2\nmodels:\n  - name: {LONG}\n    columns:\n      - name: id\n"
                "        data_tests: [unique]\n"
            ),
        },
        target="postgres",
    )
    assert LONG not in project.nodes and project.nodes["clv_by_channel"].file == f"models/{LONG}.sql"
    assert project.nodes["b"].deps == ("clv_by_channel",)
    assert project.nodes["clv_by_channel"].columns["id"].unique
    assert sql_of(project, "c_v2") == "select 'c_v2' as me"


def test_the_identifier_limit_is_the_engines(tmp_path):
    files = {"seeds/nums.csv": "id\n1\n", f"models/{LONG}.sql": "select id from {{ ref('nums') }}\n"}
    assert LONG in load(tmp_path, files).nodes  # DuckDB has no limit
    with pytest.raises(ProjectError) as exc:
        load(tmp_path, files, target="postgres")
    assert any("the limit is 63 (set `alias`" in i.message for i in exc.value.issues), exc.value.issues


# --- built: late rendering, run_started_at / invocation_id, alias, a package's models ----------

BUILT = {
    "dbt_project.yml": PROJECT,
    "seeds/events.csv": "id,kind,amount\n1,click,1.5\n2,view,2.0\n3,click,3.0\n4,buy,10.0\n",
    # what a package like dbt_utils does: the column's values, queried while rendering
    "macros/pivot.sql": (
        "{% macro kinds(rel) %}\n"
        "{% set rows = run_query('select distinct kind from ' ~ rel ~ ' order by kind') %}\n"
        "{% if execute %}{{ return(rows.columns[0].values()) }}{% else %}{{ return([]) }}{% endif %}\n"
        "{% endmacro %}\n"
    ),
    "models/by_kind.sql": (
        "select\n{% for k in kinds(ref('events')) %}"
        "  sum(case when kind = '{{ k }}' then amount else 0 end) as {{ k }}_amount,\n{% endfor %}"
        "  count(*) as n\nfrom {{ ref('events') }}\n"
    ),
    "models/stamped.sql": (
        "{{ config(alias='events_stamped', materialized='table',\n"
        '    post_hook="delete from {{ this }} where id = 4") }}\n'
        "select id, '{{ invocation_id }}' as loaded_by,\n"
        "  cast('{{ run_started_at }}' as timestamptz) as loaded_at\n"
        "from {{ ref('events') }}\n"
    ),
    "models/clicks.sql": (
        "{{ config(materialized='ephemeral') }}\nselect * from {{ ref('events') }} where kind = 'click'\n"
    ),
    "models/models_count.sql": (
        "select {{ graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')\n"
        "  | list | length }} as n\n"
    ),
    "tests/constant_passes.sql": "select 1 as x where {{ 1 + 1 }} = 3\n",
    "models/schema.yml": (
        "version: 2\nmodels:\n  - name: by_kind\n    data_tests:\n"
        "      - column_count: {expected: 4}\n"
        "  - name: stamped\n    columns:\n      - name: id\n        data_tests: [unique]\n"
        "  - name: clicks\n    columns:\n      - name: kind\n"
        "        data_tests: [not_null, {accepted_values: {values: ['click']}}]\n"
    ),
    # a test whose query reads the warehouse while rendering (real column types)
    "macros/column_count.sql": (
        "{% test column_count(model, expected) %}\n"
        "{% set cols = adapter.get_columns_in_relation(model) | map(attribute='dtype')\n"
        "   | reject('equalto', 'unknown') | list %}\n"
        "select {{ cols | length }} as n where {{ cols | length }} < {{ expected }}\n"
        "{% endtest %}\n"
    ),
}


def test_models_and_tests_that_query_the_warehouse_render_when_they_build(make_repo, any_warehouse, instance):
    if any_warehouse.startswith("sc://"):
        pytest.skip("its hooks DELETE / UPDATE a build's table: Spark's parquet tables have neither")
    from gitops_data.deployment.core import Deployment
    from gitops_data_tests.conftest import query, sync

    repo = make_repo(BUILT)
    ws = Deployment(str(repo.path), any_warehouse)
    project = ws.project(ws.resolve("main"))
    assert project.nodes["by_kind"].deps == ("events",)
    assert "gitops_data_rendered_at_build" in (project.nodes["by_kind"].sql or "")
    result = sync(ws, "main", instance)
    assert query(ws, "select buy_amount, click_amount, view_amount, n from analytics.by_kind") == [
        (10.0, 4.5, 2.0, 4)
    ]
    assert not result.warnings
    # alias: published as events_stamped; the build's own id and start time, filled in at build
    stamped = query(ws, "select distinct loaded_by, loaded_at is not null from analytics.events_stamped")
    assert len(stamped) == 1 and stamped[0][1] is True and "gitops_data" not in stamped[0][0]
    assert query(ws, "select count(*) from analytics.events_stamped") == [(3,)]  # its post-hook ran
    assert query(ws, "select n from analytics.models_count") == [
        (4,)
    ]  # graph: by_kind, stamped, clicks, itself
    # the ephemeral model's tests ran on its inlined query, as checks of the seed under it
    events_checks = {c.name for c in declared_checks(project.nodes["events"])}
    assert {"clicks__kind__not_null", "clicks__kind__accepted_values"} <= events_checks
    assert "constant_passes" in {c.name for n in project.nodes.values() for c in declared_checks(n)}

    # the same commit again: nothing rebuilds (the stand-in's fingerprint did not change)
    again = ws.plan(ws.resolve("main"), ws.environment("main", project.settings))
    assert {m.action.value for m in again.models.values()} <= {"reuse", "external", "inline"}

    # new data in the seed: the late model renders again with the new values
    repo.write("seeds/events.csv", BUILT["seeds/events.csv"] + "5,refund,-1.0\n")
    repo.commit("a new kind")
    sync(ws, "main", instance)
    assert query(ws, "select refund_amount, n from analytics.by_kind") == [(-1.0, 5)]


def test_the_surface_project_of_the_fidelity_test_loads():
    """gitops_data_tests/dbt_surface (built beside dbt-duckdb in test_dbt_fidelity.py)."""
    project = load_project(DirTree(str(Path(__file__).parent / "dbt_surface")), "postgres")
    assert {"events_trimmed", "crm_active", "crm_accounts", "by_kind"} <= set(project.nodes)
    assert "only_on_snowflake" not in project.nodes and "crm_unused" not in project.nodes
    assert project.nodes["events_trimmed"].post_hooks == (
        "delete from __gitops_data_this__ where kind = 'buy'",
    )
    assert project.nodes["events"].pre_hooks == ("select 1 as started",)  # on-run-start: in every build


# --- unit tests ---------------------------------------------------------------------------------

UNIT = {
    "seeds/orders.csv": "id,amount,status\n1,10,paid\n",
    "models/paid.sql": (
        "{{ config(materialized='incremental', unique_key='id', incremental_column='id') }}\n"
        "select id, amount * 2 as doubled from {{ ref('orders') }} where status = 'paid'\n"
        "{% if is_incremental() %} and id > (select max(id) from {{ this }}){% endif %}\n"
    ),
}


def _unit(tests: str) -> dict[str, str]:
    return {**UNIT, "models/unit.yml": "version: 2\nunit_tests:\n" + textwrap.dedent(tests)}


def test_unit_tests_run_on_their_fixtures(tmp_path):
    project = load(
        tmp_path,
        _unit(
            """\
            - name: doubles_paid_orders
              model: paid
              given:
                - input: ref('orders')
                  rows: [{id: 1, amount: 5, status: paid}, {id: 2, amount: 7, status: open}]
              expect:
                rows: [{id: 1, doubled: 10}]
            - name: only_new_rows_when_incremental
              model: paid
              overrides: {macros: {is_incremental: true}}
              given:
                - input: ref('orders')
                  format: csv
                  rows: |
                    id,amount,status
                    1,5,paid
                    3,4,paid
                - input: this
                  rows: [{id: 1, doubled: 10}]
              expect:
                format: csv
                rows: |
                  id,doubled
                  3,8
            """
        ),
    )
    assert "paid" in project.nodes


def test_a_failing_unit_test_is_a_validate_error_at_its_line(tmp_path):
    found = issues(
        tmp_path,
        _unit(
            """\
            - name: passes
              model: paid
              given: [{input: "ref('orders')", rows: []}]
              expect: {rows: []}
            - name: wrong
              model: paid
              given: [{input: "ref('orders')", rows: [{id: 1, amount: 5, status: paid}]}]
              expect: {rows: [{id: 1, doubled: 11}]}
            """
        ),
    )
    assert [(i.file, i.line) for i in found] == [("models/unit.yml", 7)], found
    assert (
        "expected row(s) missing" in found[0].message
        and "unexpected row(s), e.g. (1, 10)" in found[0].message
    )


# --- dbt Python models --------------------------------------------------------------------------


def test_a_dbt_python_model_reads_what_it_refs(tmp_path):
    project = load(
        tmp_path,
        {
            "seeds/nums.csv": "id\n1\n",
            "models/a.sql": "select id from {{ ref('nums') }}\n",
            "models/py.py": (
                "def model(dbt, session):\n    dbt.config(materialized='table')\n"
                "    return dbt.ref('a').join(dbt.ref('nums'), 'id')\n"
            ),
            "models/b.sql": "select * from {{ ref('py') }}\n",
        },
    )
    assert project.nodes["py"].kind == "python" and project.nodes["py"].deps == ("a", "nums")
    assert project.nodes["b"].deps == ("py",)


@pytest.mark.parametrize(
    "body, message",
    [
        ("def model(dbt):\n    return None\n", "defines `def model(dbt, session)`"),
        ("def model(dbt, session):\n    name = 'a'\n    return dbt.ref(name)\n", "takes literal strings"),
        ("def model(dbt, session):\n    return dbt.ref('nope')\n", "no model, seed or snapshot named 'nope'"),
        (
            "def model(dbt, session):\n    dbt.config(materialized='incremental')\n    return None\n",
            "a dbt Python model is a table here",
        ),
    ],
)
def test_dbt_python_models_that_cannot_be_read_are_validate_errors(tmp_path, body, message):
    found = issues(tmp_path, {"seeds/nums.csv": "id\n1\n", "models/py.py": body})
    assert any(i.file == "models/py.py" and message in i.message for i in found), found


def test_a_chain_of_a_thousand_aliased_models_loads(tmp_path):
    """Each model refs the next, and sets its alias in its own file: no render recursion, no
    recursion in ordering the plan."""
    files: dict[str, str | bytes] = {
        "seeds/s.csv": "id\n1\n",
        "models/m999.sql": "select id from {{ ref('s') }}\n",
    }
    for i in range(999):
        files[f"models/m{i}.sql"] = (
            f"{{{{ config(alias='a{i}') }}}}\nselect id from {{{{ ref('m{i + 1}') }}}}\n"
        )
    project = load(tmp_path, files)
    assert project.nodes["a0"].deps == ("a1",) and project.nodes["a998"].deps == ("m999",)


def test_tests_of_an_external_table_source_are_checks_of_the_models_that_read_it(tmp_path):
    sources = (
        "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: orders\n"
        "        columns:\n          - name: id\n            data_tests: [unique]\n"
    )
    project = load(
        tmp_path,
        {
            "models/sources.yml": sources,
            "models/stg.sql": "select id from {{ source('raw', 'orders') }}\n",
            "models/other.sql": "select count(*) as n from {{ source('raw', 'orders') }}\n",
        },
    )
    for reader in ("stg", "other"):
        (check,) = declared_checks(project.nodes[reader])
        assert check.name == "raw__orders__id__unique" and check.reads == ("raw__orders",)
    found = issues(tmp_path / "unread", {"models/sources.yml": sources, "models/a.sql": "select 1 as x\n"})
    assert any("run with the models that read it, and none does" in i.message for i in found), found


# --- store_failures -----------------------------------------------------------------------------

STORED = {
    "dbt_project.yml": PROJECT + "tests:\n  +store_failures: true\n",
    "gitops_data.yaml": "retention: {publishes: 1}\n",
    "seeds/orders.csv": "id,amount\n1,10\n1,20\n2,\n3,5\n",
    "models/orders_m.sql": "select * from {{ ref('orders') }}\n",
    "models/schema.yml": (
        "version: 2\nmodels:\n  - name: orders_m\n    columns:\n"
        "      - name: id\n        data_tests:\n"
        "          - unique: {config: {severity: warn}}\n"
        "          - accepted_values: {values: [1, 2, 3], config: {store_failures: false}}\n"
        "      - name: amount\n        data_tests:\n"
        "          - not_null: {config: {severity: warn, store_failures_as: view}}\n"
    ),
    "tests/no_big.sql": (
        "{{ config(severity='warn') }}\nselect * from {{ ref('orders_m') }} where amount > 15\n"
    ),
}


def test_store_failures_keeps_failing_rows_beside_the_build_until_gc_drops_it(
    make_repo, any_warehouse, instance
):
    from datetime import timedelta

    from gitops_data.deployment.core import Deployment
    from gitops_data.naming import failures_table
    from gitops_data.warehouse.inspect import collect_garbage
    from gitops_data_tests.conftest import objects, query, sync

    repo = make_repo(STORED)
    ws = Deployment(str(repo.path), any_warehouse)
    result = sync(ws, "main", instance)
    assert {(m, c) for m, c, _ in result.warnings} == {
        ("orders_m", "id__unique"),
        ("orders_m", "amount__not_null"),
        ("orders_m", "no_big"),
    }
    with ws.catalog() as cat:
        first = cat.published_builds("main")["main"]["orders_m"]
    internal = ws.settings.internal_schema
    tables = {
        check: failures_table(first.table, check) for check in ("id__unique", "amount__not_null", "no_big")
    }
    present = objects(ws, internal)
    # tables both (a view would keep the builds it reads from gc)
    assert present[tables["id__unique"]] == present[tables["amount__not_null"]] == "TABLE"
    assert failures_table(first.table, "id__accepted_values") not in present  # store_failures: false
    # dbt's columns: unique_field / n_records; not_null: the whole failing rows; a singular test's rows
    assert query(ws, f'select unique_field, n_records from {internal}."{tables["id__unique"]}"') == [(1, 2)]
    assert query(ws, f'select id, amount from {internal}."{tables["amount__not_null"]}"') == [(2, None)]
    assert query(ws, f'select id, amount from {internal}."{tables["no_big"]}"') == [(1, 20)]

    # a new build: its own failures tables; gc drops the old build's with it, none is an orphan
    repo.write("seeds/orders.csv", "id,amount\n1,10\n2,30\n3,5\n")
    repo.commit("fix the duplicate")
    sync(ws, "main", instance)
    with ws.catalog() as cat:
        second = cat.published_builds("main")["main"]["orders_m"]
        report = collect_garbage(cat, ws.settings, grace=timedelta(0))
    assert first.build_id in {b.build_id for b in report.dropped} and report.orphans == []
    present = objects(ws, internal)
    assert not any(name.startswith(first.table) for name in present)
    assert query(ws, f'select count(*) from {internal}."{failures_table(second.table, "id__unique")}"') == [
        (0,)
    ]
    assert query(ws, f'select id, amount from {internal}."{failures_table(second.table, "no_big")}"') == [
        (2, 30)
    ]


# --- hooks on PostgreSQL --------------------------------------------------------------------------

HOOKED = {
    "dbt_project.yml": PROJECT,
    "seeds/days.csv": "id,day\n1,2024-01-02\n2,2025-03-04\n",
    "models/stamped_days.sql": (
        "{{ config(materialized='table',\n"
        "    post_hook=\"update {{ this }} set label = strftime(day, '%Y-%m')\") }}\n"
        "select id, day, cast(null as varchar) as label from {{ ref('days') }}\n"
    ),
}


def test_hooks_in_the_duckdb_dialect_are_transpiled_for_postgres(
    make_repo, any_warehouse, instance, tmp_path
):
    if any_warehouse.startswith("sc://"):
        pytest.skip("its hooks DELETE / UPDATE a build's table: Spark's parquet tables have neither")
    from gitops_data.deployment.core import Deployment
    from gitops_data_tests.conftest import query, sync

    on_postgres = load(tmp_path, HOOKED, target="postgres")
    assert on_postgres.nodes["stamped_days"].post_hooks == (
        "UPDATE __gitops_data_this__ SET label = TO_CHAR(day, 'YYYY-MM')",
    )
    repo = make_repo(HOOKED)
    ws = Deployment(str(repo.path), any_warehouse)
    sync(ws, "main", instance)
    assert query(ws, "select id, label from analytics.stamped_days order by id") == [
        (1, "2024-01"),
        (2, "2025-03"),
    ]


def test_a_hook_that_cannot_run_on_postgres_is_a_validate_error_at_its_line(tmp_path):
    files = {
        **HOOKED,
        "dbt_project.yml": PROJECT + 'on-run-start:\n  - "pragma threads=2"\n',
        "models/stamped_days.sql": (
            "{{ config(materialized='table') }}\n"
            "{{ config(pre_hook='select * exclude (day) from ' ~ ref('days')) }}\n"
            "select id, day from {{ ref('days') }}\n"
        ),
    }
    load(tmp_path / "duck", files)  # DuckDB runs both as written
    with pytest.raises(ProjectError) as exc:
        load(tmp_path / "pg", files, target="postgres")
    found = {(i.file.rsplit("/", 1)[-1], i.line): i.message for i in exc.value.issues}
    assert "PRAGMA (DuckDB only) cannot run on postgres" in found[("dbt_project.yml", 4)]
    assert "cannot run on postgres: SELECT * EXCLUDE / REPLACE" in found[("stamped_days.sql", 2)]
    # one error per hook, not one per model it runs around
    assert sum("PRAGMA" in m for m in found.values()) == 1


# --- graph.depends_on -----------------------------------------------------------------------------


def test_graph_depends_on_is_filled_from_the_loaded_project(tmp_path):
    files = {
        **PACKAGE,
        "seeds/events.csv": "id,kind\n1,a\n",
        "models/sources.yml": "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: users\n",
        "macros/helpers.sql": (
            "{% macro dependents_of(name) %}{% set out = [] %}"
            "{% for n in graph.nodes.values() if n.resource_type == 'model' %}"
            "{% for d in n.depends_on.nodes if d.endswith('.' ~ name) %}{% do out.append(n.name) %}"
            "{% endfor %}{% endfor %}{{ return(out | sort) }}{% endmacro %}\n"
            "{% macro node_deps(name) %}{% for n in graph.nodes.values() if n.name == name %}"
            "{{ return(n.depends_on) }}{% endfor %}{% endmacro %}\n"
        ),
        "models/a.sql": "select * from {{ ref('events') }} where {{ crm.crm_flag() }}\n",
        "models/b.sql": (
            "select a.id from {{ ref('a') }} as a join {{ source('raw', 'users') }} as u on a.id = u.id\n"
        ),
        "models/users_of_events.sql": "select '{{ dependents_of('events') | join(',') }}' as users\n",
        "models/deps_of_b.sql": "select '{{ node_deps('b').nodes | join(',') }}' as deps\n",
        "models/macros_of_a.sql": "select '{{ node_deps('a').macros | join(',') }}' as macros\n",
    }
    project = load(tmp_path, files)
    assert sql_of(project, "users_of_events") == "select 'a' as users"
    assert sql_of(project, "deps_of_b") == "select 'model.shop.a,source.shop.raw.users' as deps"
    assert sql_of(project, "macros_of_a") == "select 'macro.crm.crm_flag' as macros"
    # report refs a package's model by its package: the package's node
    report = load(
        tmp_path / "again",
        {
            **files,
            "models/deps_of_report.sql": ("select '{{ node_deps('report').nodes | join(',') }}' as deps\n"),
        },
    )
    assert sql_of(report, "deps_of_report") == "select 'model.crm.crm_active' as deps"


# --- a hook that drops its own relation ---------------------------------------------------------


def test_a_node_whose_post_hook_drops_itself_is_not_built(tmp_path):
    """dbt builds it, then its post-hook drops it: nothing is left to read, so nothing is built; its
    other hooks and the rest of the project are unaffected."""
    project = load(
        tmp_path,
        {
            "dbt_project.yml": PROJECT
            + "seeds:\n  shop:\n    gone:\n      +post-hook: "
            + "\"{% do adapter.drop_relation(this.incorporate(type='table')) %}\"\n",
            "seeds/gone.csv": "id\n1\n",
            "seeds/kept.csv": "id\n2\n",
            "models/temp.sql": (
                "{{ config(materialized='table', pre_hook='{% do adapter.drop_relation(this) %}', "
                "post_hook=['select 1 as noted', '{% do adapter.drop_relation(this) %}']) }}\nselect 1 as x\n"
            ),
            "models/report.sql": (
                "{{ config(pre_hook='{% do adapter.drop_relation(this) %}') }}\n"
                "select * from {{ ref('kept') }}\n"
            ),
        },
    )
    assert "gone" not in project.nodes and "temp" not in project.nodes
    assert project.nodes["kept"].post_hooks == ()
    # a pre-hook's drop is of the relation the build replaces: nothing to run, the model is built
    assert project.nodes["report"].pre_hooks == ()


@pytest.mark.parametrize(
    "files, message",
    [
        pytest.param(
            {"models/report.sql": "select * from {{ ref('gone') }}\n"},
            "ref('gone'): gone's post-hook drops it (adapter.drop_relation(this))",
            id="ref-to-it",
        ),
        pytest.param(
            {
                "models/a_reader.sql": "select * from {{ ref('temp') }}\n",  # rendered before temp
                "models/temp.sql": (
                    "{{ config(post_hook='{% do adapter.drop_relation(this) %}') }}\nselect 1 as x\n"
                ),
            },
            "reads temp, whose post-hook drops it",
            id="a-model-read-before-it-drops-itself",
        ),
        pytest.param(
            {
                "seeds/schema.yml": "version: 2\nseeds:\n  - name: gone\n    columns:\n      - name: id\n"
                "        data_tests: [unique]\n"
            },
            "gone has tests, but its post-hook drops it",
            id="tests-on-it",
        ),
    ],
)
def test_reading_or_testing_a_node_that_drops_itself_is_a_validate_error(tmp_path, files, message):
    found = issues(
        tmp_path,
        {
            "dbt_project.yml": PROJECT
            + "seeds:\n  shop:\n    gone:\n      +post-hook: '{% do adapter.drop_relation(this) %}'\n",
            "seeds/gone.csv": "id\n1\n",
            **files,
        },
    )
    assert any(message in i.message for i in found), found
