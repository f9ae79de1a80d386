"""A dbt project in the data repo: loaded as our Project (rendering, mapping, validate errors),
fingerprinted, and run through validate, plan, sync, branch, merge and revert on both engines."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from gitops_data.deployment.apply import apply
from gitops_data.deployment.core import Deployment
from gitops_data.errors import ProjectError
from gitops_data.fingerprint import local_fingerprint, project_fingerprints
from gitops_data.orchestration.run import InProcessExecutor
from gitops_data.plan import Action, Mode, Status
from gitops_data.project.checks import declared_checks
from gitops_data.project.loader import load_project
from gitops_data.project.tree import DirTree, GitTree
from gitops_data_tests.conftest import query, sync

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jaffle_dbt"

BASE = {
    "dbt_project.yml": "name: t\nprofile: t\nvars: {limit_to: 2}\n",
    "seeds/nums.csv": "id,v\n1,10\n2,20\n3,30\n",
    "models/a.sql": "select id, v from {{ ref('nums') }}\n",
}


def write(root: Path, files: dict[str, str | None]) -> Path:
    for rel, text in files.items():
        path = root / rel
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def load(
    tmp_path: Path, files: dict[str, str | None], base: dict[str, str] | None = None, target: str = "duckdb"
):
    return load_project(DirTree(str(write(tmp_path, {**(BASE if base is None else base), **files}))), target)


def issues(tmp_path: Path, files: dict[str, str | None], base: dict[str, str] | None = None) -> list:
    with pytest.raises(ProjectError) as exc:
        load(tmp_path, files, base)
    return exc.value.issues


def sql_of(project, name: str) -> str:
    return " ".join((project.nodes[name].sql or "").split())


# --- loading the example ------------------------------------------------------------------------


def test_the_example_loads_every_kind_of_dbt_resource():
    p = load_project(DirTree(str(EXAMPLE)))
    kinds = {n: (node.kind, node.materialized) for n, node in p.nodes.items()}
    assert kinds == {
        "raw_customers": ("seed", "table"),
        "countries": ("seed", "table"),
        "jaffle__raw_orders": ("source", "table"),  # source('jaffle', 'raw_orders'): a file source
        "jaffle__raw_payments": ("source", "table"),
        "stg_customers": ("sql", "view"),  # the staging folder's +materialized: view
        "stg_orders": ("sql", "view"),
        "stg_payments": ("sql", "view"),
        "int_order_payments": ("sql", "ephemeral"),
        "orders": ("sql", "table"),
        "customers": ("sql", "table"),
        "calendar": ("sql", "table"),
        "orders_log": ("sql", "table"),
        "customers_snapshot__history": ("snapshot", "table"),
        "customers_snapshot": ("sql", "view"),
    }
    assert p.settings.name == "jaffle"
    # gitops-data YAML beside the dbt project: a schedule selecting dbt models, by name and dbt tag
    assert [(s.name, s.select) for s in p.schedules] == [("hourly_orders", ["orders_log", "tag:finance"])]
    assert p.select(["tag:finance"]) == ["orders"] and p.alerts[0].name == "data_team"
    assert p.nodes["jaffle__raw_orders"].data_path == "data/raw_orders.csv"
    assert p.nodes["countries"].declared_types == {"code": "TEXT", "name": "TEXT", "region": "TEXT"}
    # ref() and source() render as plain names; the package's star() expanded stg_orders' columns
    assert "from jaffle__raw_orders" in sql_of(p, "stg_orders")
    assert 'o."order_id", o."customer_id", o."ordered_at", o."status"' in sql_of(p, "orders")
    assert "md5(cast(coalesce(cast(o.order_id as TEXT)" in sql_of(p, "orders")  # generate_surrogate_key
    assert "round(cast(amount_cents as decimal(16, 4)) / 100, 2)" in sql_of(p, "stg_payments")
    assert p.nodes["orders"].deps == ("int_order_payments", "stg_orders")
    assert p.nodes["orders"].owner == "analytics@example.com" and "finance" in p.nodes["orders"].tags
    # incremental: the column its is_incremental() filter watches; the SQL rendered without it
    inc = p.nodes["orders_log"].incremental
    assert (inc.column, inc.unique_key, inc.forward_only) == ("ordered_at", ["order_id"], False)
    assert "max(" not in sql_of(p, "orders_log")
    snap = p.nodes["customers_snapshot__history"].snapshot
    assert (snap.source, snap.unique_key, snap.strategy, snap.updated_at) == (
        "stg_customers",
        ["customer_id"],
        "timestamp",
        "updated_at",
    )
    assert snap.invalidate_hard_deletes is False  # dbt's default: hard deletes are ignored
    assert 'valid_from as "dbt_valid_from"' in sql_of(p, "customers_snapshot")


def test_dbt_tests_become_checks_of_the_models_they_test():
    p = load_project(DirTree(str(EXAMPLE)))

    def checks(name: str) -> dict[str, tuple]:
        return {c.name: (c.kind, c.column, c.severity, c.reads) for c in declared_checks(p.nodes[name])}

    assert checks("stg_customers") == {
        "customer_id__not_null": ("not_null", "customer_id", "error", ()),
        "customer_id__unique": ("unique", "customer_id", "error", ()),
        "email__not_null": ("not_null", "email", "warn", ()),  # config: {severity: warn}
    }
    stg_orders = checks("stg_orders")
    assert stg_orders["status__isin"][:3] == ("isin", "status", "error")  # accepted_values
    assert stg_orders["relationship"] == ("relationship", None, "error", ("stg_customers",))
    orders = checks("orders")
    # a package's generic test, the project's own generic test, and the singular test (which refs
    # orders first, so it is a check of orders that also reads stg_payments)
    assert orders["expression_is_true"][:3] == ("returns_no_rows", None, "error")
    assert orders["amount__not_negative"][:3] == ("returns_no_rows", None, "error")
    assert orders["assert_order_amounts_match_payments"] == (
        "returns_no_rows",
        None,
        "error",
        ("orders", "stg_payments"),
    )
    assert checks("customers")["lifetime_value__expression_is_true"][2] == "warn"


def test_settings_can_name_a_dbt_folder_beside_gitops_yaml(tmp_path):
    """`dbt_project:` in gitops_data.yaml: the dbt project in a folder, gitops-data YAML elsewhere
    (a YAML model may read dbt models, a schedule may select them), vars and target from settings."""
    p = load(
        tmp_path,
        {
            "gitops_data.yaml": "name: mixed\ndbt_project: {path: dbt, target: ci, vars: {limit_to: 1}}\n",
            "dbt/dbt_project.yml": "name: t\nvars: {limit_to: 2}\n",
            "dbt/seeds/nums.csv": "id,v\n1,10\n2,20\n",
            "dbt/models/a.sql": "select id, '{{ target.name }}' as t from {{ ref('nums') }} "
            "where id <= {{ var('limit_to') }}\n",
            "dbt/models/schema.yml": "version: 2\nmodels:\n  - name: a\n    description: the dbt model\n",
            "ops.yml": "models:\n  - name: b\n    sql: select count(*) as n from a\n"
            "schedules:\n  - {name: hourly, cron: '0 * * * *', select: [a]}\n",
        },
        base={},
    )
    assert set(p.nodes) == {"nums", "a", "b"}
    assert p.nodes["b"].deps == ("a",) and p.schedules[0].select == ["a"]
    assert "'ci' as t" in sql_of(p, "a") and "id <= 1" in sql_of(p, "a")  # settings' vars win
    assert p.nodes["nums"].data_path == "dbt/seeds/nums.csv"
    assert p.settings.name == "mixed"


def test_the_jinja_surface_models_use(tmp_path, monkeypatch):
    monkeypatch.setenv("T_REGION", "EU")
    p = load(
        tmp_path,
        {
            "dbt_project.yml": """
                name: t
                vars: {limit_to: 2, t: {scoped: 5}}
                dispatch:
                  - macro_namespace: pkg
                    search_order: [t, pkg]
                models:
                  t:
                    +materialized: table
                    marts:
                      b: {+materialized: view}
            """,
            "macros/m.sql": """
                {% macro double(x) %}{{ return(x * 2) }}{% endmacro %}
                {% macro columns(names) -%}
                  {%- for n in names %}{{ n }}{% if not loop.last %}, {% endif %}{% endfor -%}
                {%- endmacro %}
                {% macro default__greet(who) %}'project says hi to {{ who }}'{% endmacro %}
            """,
            "dbt_packages/pkg/dbt_project.yml": "name: pkg\n",
            "dbt_packages/pkg/macros/p.sql": """
                {% macro greet(who) %}{{ return(adapter.dispatch('greet', 'pkg')(who)) }}{% endmacro %}
                {% macro default__greet(who) %}'pkg says hi to {{ who }}'{% endmacro %}
                {% macro _private() %}{{ return('private') }}{% endmacro %}
                {% macro uses_private() %}'{{ pkg._private() }}'{% endmacro %}
            """,
            "models/marts/b.sql": """
                {# a comment that is not SQL #}
                {%- set cols = ['id', 'v'] -%}
                select {{ columns(cols) }},
                       {{ double(21) }} as answer,
                       {{ var('scoped') }} as scoped,
                       {{ var('missing', 7) }} as defaulted,
                       '{{ env_var('T_REGION') }}' as region,
                       '{{ env_var('T_UNSET', 'none') }}' as unset,
                       '{{ target.name }}/{{ target.schema }}/{{ target.type }}' as target,
                       {{ pkg.greet('you') }} as greeting,
                       {{ pkg.uses_private() }} as private,
                       '{{ this }}' as me,
                       {% if is_incremental() %}1{% else %}0{% endif %} as inc,
                       '{{ modules.datetime.date(2024, 1, 2).isoformat() }}' as d
                from {{ ref('t', 'a') }}
                {% if var('limit_to') > 1 %}where id <= {{ var('limit_to') }}{% endif %}
            """,
        },
    )
    assert p.nodes["a"].materialized == "table" and p.nodes["b"].materialized == "view"
    sql = sql_of(p, "b")
    for piece in (
        "select id, v,",
        "42 as answer",
        "5 as scoped",
        "7 as defaulted",
        "'EU' as region",
        "'none' as unset",
        "'prod/analytics/duckdb' as target",
        "'project says hi to you' as greeting",  # dispatch search_order: the project overrides the package
        "'private' as private",
        "'b' as me",
        "0 as inc",
        "'2024-01-02' as d",
        "from a where id <= 2",
    ):
        assert piece in sql, (piece, sql)
    assert "comment" not in sql


def test_a_macro_change_changes_exactly_the_fingerprints_of_the_models_that_call_it(make_repo):
    repo = make_repo()
    shutil.copytree(EXAMPLE, repo.path, dirs_exist_ok=True)
    first = repo.commit("dbt")
    repo.replace("macros/cents_to_dollars.sql", "scale=2", "scale=3")
    changed = repo.commit("cents with three decimals")
    repo.replace(
        "macros/cents_to_dollars.sql", "{# amounts arrive in cents", "{# amounts (integers) arrive in cents"
    )
    repo.replace("macros/cents_to_dollars.sql", "    round(", "        round(")
    cosmetic = repo.commit("comment and indentation")

    def state(sha: str):
        p = load_project(GitTree(str(repo.path), sha))
        return p, project_fingerprints(p), {n: local_fingerprint(node) for n, node in p.nodes.items()}

    p0, fp0, local0 = state(first)
    p1, fp1, local1 = state(changed)
    _, fp2, local2 = state(cosmetic)
    callers = {"stg_payments"}  # the only model whose SQL calls cents_to_dollars
    assert {n for n in local0 if local0[n] != local1[n]} == callers
    assert (
        {n for n in fp0 if fp0[n] != fp1[n]}
        == p1.downstream(callers)
        == {
            "stg_payments",
            "int_order_payments",
            "orders",
            "customers",
        }
    )
    assert fp2 == fp1 and local2 == local1  # what the macro renders is the same: nothing rebuilds


def test_snapshots_map_onto_a_history_node_and_a_view_with_dbts_columns(tmp_path):
    p = load(
        tmp_path,
        {
            "snapshots/s.sql": """
                {% snapshot big_nums %}
                {{ config(unique_key='id', strategy='check', check_cols='all', hard_deletes='invalidate',
                          snapshot_meta_column_names={'dbt_valid_to': 'valid_until'}) }}
                select id, v from {{ ref('nums') }} where v > 10
                {% endsnapshot %}
            """,
            "snapshots/props.yml": """
                snapshots:
                  - name: by_yaml
                    relation: ref('a')
                    config: {unique_key: [id], strategy: check, check_cols: [v]}
                    columns:
                      - name: id
                        data_tests: [unique]
            """,
        },
    )
    # a query that is not a plain `select *` is kept in a view the snapshot reads
    assert p.nodes["big_nums__input"].materialized == "view"
    history = p.nodes["big_nums__history"].snapshot
    assert (history.source, history.strategy, history.check_cols, history.invalidate_hard_deletes) == (
        "big_nums__input",
        "check",
        None,
        True,
    )
    assert '"valid_until"' in sql_of(p, "big_nums") and '"dbt_valid_from"' in sql_of(p, "big_nums")
    assert p.nodes["by_yaml__history"].snapshot.source == "a"  # YAML snapshot: relation: ref('a')
    assert [c.name for c in declared_checks(p.nodes["by_yaml"])] == ["id__unique"]


def test_star_reads_the_columns_of_seeds_models_and_declared_sources(tmp_path):
    shutil.copytree(EXAMPLE / "dbt_packages", tmp_path / "dbt_packages")
    p = load(
        tmp_path,
        {
            "seeds/people.csv": "PersonID,Region,Score\n1,EU,3\n",
            "models/a.sql": "select *, Score * 2 as DoubleScore from {{ ref('people') }}\n",
            "models/b.sql": "select {{ mini_utils.star(ref('a'), except=['region']) }} from {{ ref('a') }}\n",
            "models/c.sql": "select {{ mini_utils.star(source('crm', 'accounts'), relation_alias='x') }}\n"
            "from {{ source('crm', 'accounts') }} as x\n",
            "models/sources.yml": """
                sources:
                  - name: crm
                    schema: main
                    tables:
                      - name: accounts
                        identifier: crm_accounts
                        columns: [{name: account_id}, {name: owner}]
                      - name: events
            """,
        },
    )
    assert 'select "PersonID", "Score", "DoubleScore" from a' in sql_of(p, "b")
    assert 'x."account_id", x."owner"' in sql_of(p, "c")
    assert p.nodes["crm__accounts"].kind == "table" and p.nodes["crm__accounts"].table == "main.crm_accounts"
    found = issues(
        tmp_path,
        {
            "models/d.sql": "select\n{{ mini_utils.star(source('crm', 'events')) }}\n"
            "from {{ source('crm', 'events') }}\n"
        },
        base={},
    )
    assert any(
        i.file == "models/d.sql" and i.line == 2 and "cannot tell the columns of 'crm__events'" in i.message
        for i in found
    ), found


MALFORMED = [
    {"models/schema.yml": "models:\n  - name: a\n    columns: 3\n    config: [1, 2]\n"},
    {
        "models/schema.yml": "models:\n  - name: a\n    columns:\n      - name: v\n"
        "        data_tests: {unique: 1}\n"
    },
    {
        "models/schema.yml": "models:\n  - name: a\n    data_tests:\n"
        "      - accepted_values: {values: {a: 1}}\n"
    },
    {"models/schema.yml": "sources:\n  - name: s\n    config: [x]\n    meta: 5\n    tables: {t: 1}\n"},
    {
        "models/schema.yml": "sources:\n  - name: s\n    tables:\n"
        "      - {name: t, meta: {external_location: '{0}'}}\n"
    },
    {"models/schema.yml": "- just a list\n"},
    {"dbt_project.yml": "name: t\nmodels: [1, 2]\n"},
    {"dbt_project.yml": "name: t\nmodels: {t: {+materialized: [view], +tags: 7, +meta: 3}}\n"},
    {"dbt_project.yml": "- not a mapping\n"},
    {"dbt_project.yml": "name: t\npackages-install-path: ../elsewhere\n"},
    {
        "models/b.sql": "{{ config(materialized='incremental', unique_key={'a': 1},\n"
        "incremental_column='id') }}\nselect id from {{ ref('a') }}\n"
    },
    {"models/b.sql": "{% for x in 5 %}{% endfor %}select {{ 1 / 0 }} as x\n"},
    {"models/b.sql": "{{ return(1) }}\n"},
    {
        "snapshots/s.sql": "{% snapshot s %}{{ config(strategy='timestamp', unique_key='id') }}"
        "select 1 as id{% endsnapshot %}"
    },
    {"tests/t.sql": "select 1 as x\n"},
]


@pytest.mark.parametrize("files", MALFORMED)
def test_malformed_projects_are_validate_errors_never_crashes(tmp_path, files):
    try:
        load(tmp_path, files)
    except ProjectError as exc:
        assert exc.issues and all(i.file for i in exc.issues)


# --- what cannot be rendered or mapped is a validate error at file:line ---------------------------

ERRORS = [
    pytest.param(
        {"models/b.sql": "select *\nfrom {{ ref('a') }}\njoin {{ ref('nmus') }} using (id)\n"},
        ("models/b.sql", 3, "ref('nmus'): no model, seed or snapshot named 'nmus'; did you mean 'nums'?"),
        id="unknown-ref",
    ),
    pytest.param(
        {"models/b.sql": "select {{ dbt_utils.star(ref('a')) }}\nfrom {{ ref('a') }}\n"},
        ("models/b.sql", 1, "'dbt_utils' is undefined"),
        id="package-not-installed",
    ),
    pytest.param(
        {
            "packages.yml": "packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n",
            "models/b.sql": "select\n{{ dbt_utils.star(ref('a')) }}\nfrom {{ ref('a') }}\n",
        },
        ("models/b.sql", 2, "package 'dbt_utils' is listed in packages.yml but not installed"),
        id="package-listed-not-installed",
    ),
    pytest.param(
        {"models/b.sql": "select 1 as x\n{% if true %}\nfrom {{ ref('a') }}\n"},
        ("models/b.sql", 3, "Jinja syntax error"),
        id="jinja-syntax",
    ),
    pytest.param(
        {
            "macros/m.sql": "{% macro clock() %}{{ return(adapter.dispatch('clock')()) }}{% endmacro %}\n"
            "{% macro snowflake__clock() %}sysdate(){% endmacro %}\n",
            "models/b.sql": "select\n  {{ clock() }} as now\n",
        },
        ("models/b.sql", 2, "adapter.dispatch('clock'): no duckdb__clock or default__clock"),
        id="adapter-macro-for-another-adapter",
    ),
    pytest.param(
        {
            "models/b.sql": "{{ config(materialized='ephemeral') }}\n"
            "{% set r = run_query('select max(id) from ' ~ ref('a')) %}\nselect 1 as x\n"
        },
        ("models/b.sql", None, "a ephemeral model that queries the warehouse while rendering"),
        id="run-query-on-a-table-in-an-ephemeral-model",
    ),
    pytest.param(
        {"models/b.sql": "select 1 as x,\n  {{ adapter.get_columns_in_query('select 1') }} as y\n"},
        ("models/b.sql", 2, "adapter.get_columns_in_query is not supported"),
        id="unsupported-adapter-method",
    ),
    pytest.param(
        {
            "models/schema.yml": "version: 2\nunit_tests:\n  - name: a_doubles\n    model: a\n"
            "    given:\n      - input: ref('nums')\n        rows: [{id: 1, v: 10}]\n"
            "    expect: {rows: [{id: 1, v: 20}]}\n",
        },
        ("models/schema.yml", 3, "unit test 'a_doubles' of 'a' fails: 1 expected row(s) missing"),
        id="failing-unit-test",
    ),
    pytest.param(
        {"models/b.sql": "select {{ var('nope') }} as x\n"},
        ("models/b.sql", 1, "required var 'nope' is not set"),
        id="missing-var",
    ),
    pytest.param(
        {"models/b.sql": "select 1 as x\n\n\nfrom {{ ref('a') }} where\n"},
        ("models/b.sql", 4, "cannot parse SQL"),
        id="sql-syntax",
    ),
    pytest.param(
        {"models/b.sql": "select\n  count(distinct id, v) as n\nfrom {{ ref('a') }}\n"},
        ("models/b.sql", 2, "count(DISTINCT id, v): DuckDB's count takes one argument"),
        id="count-of-two-distinct-columns",
    ),
    pytest.param(
        {"models/b.sql": "{{ config(materialized='materialized_view') }}\nselect 1 as x\n"},
        ("models/b.sql", None, "materialized 'materialized_view' is not supported"),
        id="materialization",
    ),
    pytest.param(
        {"models/b.sql": "{{ config(materialized='incremental') }}\nselect id from {{ ref('a') }}\n"},
        ("models/b.sql", None, "incremental model: cannot tell which column marks new rows"),
        id="incremental-without-column",
    ),
    pytest.param(
        {
            "models/b.sql": "{{ config(post_hook=\"{% do adapter.drop_relation(ref('a')) %}\") }}\n"
            "select 1 as x\n"
        },
        ("models/b.sql", None, "adapter.drop_relation is not supported: it would change the warehouse"),
        id="hook-that-drops-another-build",
    ),
    pytest.param(
        {"models/b.py": "def model(dbt, session):\n    return dbt.ref(dbt.this)\n"},
        ("models/b.py", 2, "dbt.ref() takes literal strings"),
        id="python-model-with-a-computed-ref",
    ),
    pytest.param(
        {
            "models/schema.yml": "version: 2\nmodels:\n  - name: a\n    columns:\n      - name: id\n"
            "        data_tests: [is_even]\n",
        },
        ("models/schema.yml", 6, "unknown generic test 'is_even'"),
        id="unknown-generic-test",
    ),
    pytest.param(
        {
            "models/schema.yml": "version: 2\nmodels:\n  - name: a\n    columns:\n      - name: id\n"
            "        data_tests:\n          - relationships: {to: ref('numz'), field: id}\n",
        },
        ("models/schema.yml", 7, "ref('numz'): no model, seed or snapshot named 'numz'"),
        id="relationship-to-unknown-model",
    ),
    pytest.param(
        {
            "models/schema.yml": "version: 2\nsources:\n  - name: raw\n"
            "    meta: {external_location: 'data/{name}.csv'}\n    tables:\n      - name: events\n",
        },
        ("models/schema.yml", 6, "file 'data/events.csv' does not exist"),
        id="external-location-missing",
    ),
    pytest.param(
        {
            "models/e.sql": "{{ config(materialized='ephemeral') }}\nselect 1 as id\n",
            "models/schema.yml": "version: 2\nmodels:\n  - name: e\n    columns:\n      - name: id\n"
            "        data_tests: [unique]\n",
        },
        ("models/schema.yml", 3, "a test of ephemeral model e needs a built model under it to run with"),
        id="tests-on-an-ephemeral-model-over-nothing",
    ),
    pytest.param(
        {"models/nums.sql": "select 1 as id\n"},
        ("models/nums.sql", 1, "duplicate name 'nums'"),
        id="model-named-like-a-seed",
    ),
    pytest.param(
        {"dbt_project.yml": "name: t\non-run-end: {done: true}\n"},
        ("dbt_project.yml", 2, "on-run-end must be a statement or a list of them"),
        id="on-run-end-not-a-statement",
    ),
]


@pytest.mark.parametrize("files, expected", ERRORS)
def test_what_cannot_be_rendered_or_mapped_is_a_validate_error(tmp_path, files, expected):
    file, line, message = expected
    found = issues(tmp_path, files)
    assert any(i.file == file and i.line == line and message in i.message for i in found), found


def test_a_render_error_in_a_macro_names_the_macro_file_too(tmp_path):
    found = issues(
        tmp_path,
        {
            "macros/m.sql": "{% macro boom(x) %}\n"
            "  {{ exceptions.raise_compiler_error('no ' ~ x) }}\n{% endmacro %}\n",
            "models/b.sql": "select 1 as x\n{{ boom('good') }}\n",
        },
    )
    assert [(i.file, i.line, i.model) for i in found] == [("models/b.sql", 2, "b")]
    assert "compilation error: no good (in macros/m.sql:2)" in found[0].message


def test_errors_are_collected_for_every_model_at_once(tmp_path):
    found = issues(
        tmp_path,
        {
            "models/b.sql": "select {{ ref('zzz') }}\n",
            "models/c.sql": "select {{ var('nope') }} as x\n",
            "models/d.sql": "select id from {{ ref('b') }}\n",  # b failed: no second error here
        },
    )
    assert sorted(i.model for i in found) == ["b", "c"]


def test_on_postgres_duckdb_only_syntax_is_a_validate_error(tmp_path):
    with pytest.raises(ProjectError, match=r"SELECT \* EXCLUDE"):
        load(tmp_path, {"models/b.sql": "select * exclude (v) from {{ ref('a') }}\n"}, target="postgres")


# --- end to end -----------------------------------------------------------------------------------


@pytest.fixture
def jaffle(make_repo):
    repo = make_repo()
    shutil.copytree(EXAMPLE, repo.path, dirs_exist_ok=True)
    repo.commit("the jaffle dbt project")
    return repo


def _plan(ws: Deployment, ref: str):
    sha = ws.resolve(ref)
    return ws.plan(sha, ws.environment(ref, ws.project(sha).settings))


def _actions(plan) -> dict[str, str]:
    return {n: (m.mode.value if m.action == Action.BUILD else m.action.value) for n, m in plan.models.items()}


def test_the_example_validates_plans_syncs_branches_merges_and_reverts(jaffle, any_warehouse, instance):
    ws = Deployment(str(jaffle.path), any_warehouse)
    plan = _plan(ws, "main")
    assert _actions(plan)["int_order_payments"] == "inline" and _actions(plan)["orders"] == "full"
    result = sync(ws, "main", instance)
    assert result.warnings == [("stg_customers", "email__not_null", 1)]  # severity warn: published anyway
    assert query(ws, "select count(*) from analytics.orders") == [(30,)]
    assert query(ws, "select count(*) from analytics.calendar") == [(35,)]
    vips = query(ws, "select count(*) from analytics.customers where is_vip")

    # a branch lowers the VIP threshold (a project var): only customers is rebuilt
    jaffle.git("checkout", "-q", "-b", "vip")
    jaffle.replace("dbt_project.yml", "vip_threshold: 300", "vip_threshold: 100")
    jaffle.commit("lower the VIP threshold")
    branch_plan = _plan(ws, "vip")
    assert {n for n, a in _actions(branch_plan).items() if a not in ("reuse", "inline")} == {"customers"}
    branch = sync(ws, "vip", instance)
    branch_vips = query(ws, f"select count(*) from {branch.env.schema}.customers where is_vip")
    assert branch_vips[0][0] > vips[0][0]
    assert query(ws, "select count(*) from analytics.customers where is_vip") == vips  # main unchanged

    # merge: main's views flip to the branch's audited build, no build; revert flips them back
    jaffle.git("checkout", "-q", "main")
    jaffle.git("merge", "-q", "--no-ff", "vip", "-m", "merge vip")
    merged = sync(ws, "main", instance)
    assert not [m for m in merged.plan.models.values() if m.action == Action.BUILD]
    assert query(ws, "select count(*) from analytics.customers where is_vip") == branch_vips
    jaffle.git("revert", "--no-edit", "-m", "1", "HEAD")
    reverted = sync(ws, "main", instance)
    assert not [m for m in reverted.plan.models.values() if m.action == Action.BUILD]
    assert query(ws, "select count(*) from analytics.customers where is_vip") == vips


def test_incremental_models_append_and_snapshots_keep_history(jaffle, warehouse, instance):
    ws = Deployment(str(jaffle.path), warehouse)
    sync(ws, "main", instance)
    jaffle.write(
        "data/raw_orders.csv",
        jaffle.read("data/raw_orders.csv")
        + "31,3,2024-03-01 10:00:00,placed\n32,4,2024-03-02 11:00:00,placed\n",
    )
    jaffle.replace(
        "seeds/raw_customers.csv",
        "3,Cleo,Park,cleo.park@Example.com,NO,2024-01-03 09:00:00",
        "3,Cleo,Park,cleo@new.example.com,NO,2024-03-01 12:00:00",
    )
    jaffle.commit("two new orders; Cleo moved")
    plan = _plan(ws, "main")
    assert plan.models["orders_log"].mode == Mode.APPEND
    assert plan.models["customers_snapshot__history"].mode == Mode.APPEND
    sync(ws, "main", instance)
    assert query(ws, "select count(*) from analytics.orders_log") == [(32,)]
    history = query(
        ws,
        "select email, dbt_valid_from, dbt_valid_to is null from analytics.customers_snapshot "
        "where customer_id = 3 order by dbt_valid_from",
    )
    assert [(h[0], h[2]) for h in history] == [
        ("cleo.park@example.com", False),
        ("cleo@new.example.com", True),
    ]


def test_a_failing_dbt_test_blocks_the_publish(jaffle, warehouse, instance):
    ws = Deployment(str(jaffle.path), warehouse)
    sync(ws, "main", instance)
    jaffle.replace("models/staging/stg_orders.sql", "    status\n", "    upper(status) as status\n")
    jaffle.commit("shout the status")
    blocked = apply(ws, "main", InProcessExecutor(ws, instance))
    assert blocked.status == Status.BLOCKED
    assert ("stg_orders", "status__isin") in {(m, c) for m, c, _ in blocked.failures}
    assert query(ws, "select distinct status from analytics.stg_orders where status = 'placed'") == [
        ("placed",)
    ]


def test_a_blocked_publish_also_reports_the_builds_that_failed(make_repo, warehouse, instance):
    repo = make_repo(
        {
            **BASE,
            "seeds/codes.csv": "code\n1\nx\n",
            "models/parsed.sql": "{{ config(materialized='table') }}\n"
            "select cast(code as integer) as code from {{ ref('codes') }}\n",
            "models/schema.yml": "version: 2\nmodels:\n  - name: a\n    columns:\n      - name: v\n"
            "        data_tests:\n          - accepted_values: {values: [10, 20], quote: false}\n",
        }
    )
    ws = Deployment(str(repo.path), warehouse)
    blocked = apply(ws, "main", InProcessExecutor(ws, instance))
    assert blocked.status == Status.BLOCKED
    assert blocked.detail.startswith("blocking checks failed: a.")
    assert "parsed" in blocked.detail and "Conversion Error" in blocked.detail, blocked.detail
