"""A generated project of many models in three layers (staging, intermediate, marts), with checks, in
two variants that declare the same DAG: gitops-data YAML, and a dbt project (SQL files with
`{{ ref() }}` / `{{ source() }}`, schema.yml tests, macros, a var)."""

from __future__ import annotations

import random
from dataclasses import dataclass

PER_FILE = 50  # models per YAML file (YAML variant) / per schema.yml (dbt variant)
LAYERS = ("staging", "intermediate", "marts")


@dataclass(frozen=True)
class Model:
    index: int
    layer: str
    ups: tuple[str, ...]  # upstream models; empty: reads the raw inputs

    @property
    def name(self) -> str:
        return f"m{self.index:04d}"


def layer_of(i: int, models: int) -> str:
    if i < max(1, models // 5):
        return "staging"
    return "intermediate" if i < models * 7 // 10 else "marts"


def dag(models: int) -> list[Model]:
    """Staging models read the raw inputs; intermediate ones read 1-2 earlier staging or intermediate
    models; marts read 1-2 intermediate models."""
    rng = random.Random(42)
    out: list[Model] = []
    for i in range(models):
        layer = layer_of(i, models)
        if layer == "staging":
            ups: tuple[str, ...] = ()
        else:
            pool = [m.name for m in out if m.layer in (("intermediate",) if layer == "marts" else LAYERS[:2])]
            ups = tuple(rng.sample(pool, k=min(len(pool), rng.choice((1, 1, 2)))))
        out.append(Model(i, layer, ups))
    return out


def _chunks(models: list[Model]) -> dict[tuple[str, int], list[Model]]:
    out: dict[tuple[str, int], list[Model]] = {}
    for layer in LAYERS:
        ms = [m for m in models if m.layer == layer]
        for part in range(0, len(ms), PER_FILE):
            out[(layer, part // PER_FILE)] = ms[part : part + PER_FILE]
    return out


# --- gitops-data YAML ------------------------------------------------------------------------------


def yaml_sql(m: Model, salt: str = "") -> str:
    if not m.ups:
        src = "base" if m.index % 2 else "events"
        return f"select id, v + {m.index}{salt} as v, k from {src} where k >= 0"
    if len(m.ups) == 1:
        return f"select a.id, a.v + {m.index}{salt} as v, a.k from {m.ups[0]} a where a.k >= 0"
    return f"select a.id, a.v + b.v{salt} as v, a.k from {m.ups[0]} a join {m.ups[1]} b using (id)"


def _yaml_model(m: Model) -> str:
    lines = [
        f"  - name: {m.name}",
        f"    description: generated {m.layer} model {m.index}",
        f"    tags: [generated, {m.layer}]",
        f"    materialized: {'view' if m.layer == 'staging' else 'table'}",
        f"    sql: {yaml_sql(m)}",
    ]
    if m.index % 2 == 0:
        lines += ["    columns:", "      id: {nullable: false, unique: true}", "      v: {checks: [{ge: 0}]}"]
        if m.index % 3 == 0:
            lines.append("      k: {checks: [{isin: [0, 1, 2, 3, 4, 5, 6]}]}")
    if m.ups and m.index % 5 == 0:
        lines += ["    checks:", f"      - relationship: {{column: id, to: {m.ups[0]}, field: id}}"]
    return "\n".join(lines)


def yaml_file_of(m: Model, models: int) -> str:
    """The YAML file that declares model `m`."""
    for (layer, part), ms in _chunks(dag(models)).items():
        if m in ms:
            return f"models/{layer}/part_{part:03d}.yml"
    raise KeyError(m.name)


def yaml_files(models: int) -> dict[str, str]:
    files = {
        "gitops_data.yaml": "name: bench_scale\nbranches: '*'\n",
        "seeds/base.csv": "id,v,k\n" + "".join(f"{i},{i * 3},{i % 7}\n" for i in range(100)),
        "data/events.csv": "id,v,k\n" + "".join(f"{i},{i * 5},{i % 7}\n" for i in range(100)),
        "inputs.yml": (
            "seeds:\n  - name: base\n    path: seeds/base.csv\n"
            "sources:\n  - name: events\n    path: data/events.csv\n"
        ),
    }
    for (layer, part), ms in _chunks(dag(models)).items():
        files[f"models/{layer}/part_{part:03d}.yml"] = (
            "models:\n" + "\n".join(_yaml_model(m) for m in ms) + "\n"
        )
    return files


# --- dbt -----------------------------------------------------------------------------------------

DBT_PROJECT = """name: bench_dbt
version: "1.0.0"
config-version: 2
profile: bench_dbt
model-paths: ["models"]
seed-paths: ["seeds"]
macro-paths: ["macros"]
vars:
  offset_base: 7
models:
  bench_dbt:
    staging:
      +materialized: view
      +tags: [staging]
    intermediate:
      +materialized: table
    marts:
      +materialized: table
"""
MACROS = {
    "macros/offsets.sql": (
        "{% macro add_offset(column, n) -%}\n    ({{ column }} + {{ n }})\n{%- endmacro %}\n"
    ),
    "macros/filters.sql": ("{% macro non_negative(column) -%}\n    {{ column }} >= 0\n{%- endmacro %}\n"),
}
SOURCES = """version: 2

sources:
  - name: raw
    meta:
      external_location: "data/{name}.csv"
    tables:
      - name: events
"""


def dbt_sql(m: Model, salt: str = "") -> str:
    if not m.ups:
        src = "{{ ref('base') }}" if m.index % 2 else "{{ source('raw', 'events') }}"
        return (
            f"select id, {{{{ add_offset('v', {m.index}) }}}}{salt} as v, k\n"
            f"from {src}\nwhere {{{{ non_negative('k') }}}}\n"
        )
    if len(m.ups) == 1:
        return (
            f"select a.id, {{{{ add_offset('a.v', var('offset_base')) }}}}{salt} as v, a.k\n"
            f"from {{{{ ref('{m.ups[0]}') }}}} a\nwhere {{{{ non_negative('a.k') }}}}\n"
        )
    return (
        f"select a.id, a.v + b.v{salt} as v, a.k\n"
        f"from {{{{ ref('{m.ups[0]}') }}}} a\njoin {{{{ ref('{m.ups[1]}') }}}} b using (id)\n"
    )


def dbt_sql_path(m: Model) -> str:
    return f"models/{m.layer}/{m.name}.sql"


def _dbt_schema_entry(m: Model) -> str:
    lines = [f"  - name: {m.name}", f"    description: generated {m.layer} model {m.index}"]
    columns = []
    if m.index % 2 == 0:
        columns.append("      - name: id\n        data_tests: [not_null, unique]")
    if m.index % 3 == 0:
        columns.append(
            "      - name: k\n        data_tests:\n          - accepted_values:\n"
            "              arguments:\n                values: [0, 1, 2, 3, 4, 5, 6]\n"
            "                quote: false"
        )
    if m.ups and m.index % 5 == 0:
        columns.append(
            "      - name: v\n        data_tests:\n          - relationships:\n"
            f"              arguments:\n                to: ref('{m.ups[0]}')\n                field: v"
        )
    if columns:
        lines += ["    columns:", *columns]
    return "\n".join(lines)


def dbt_files(models: int) -> dict[str, str]:
    files = {
        "dbt_project.yml": DBT_PROJECT,
        "gitops_data.yaml": "name: bench_dbt\nbranches: '*'\n",
        "seeds/base.csv": "id,v,k\n" + "".join(f"{i},{i * 3},{i % 7}\n" for i in range(100)),
        "data/events.csv": "id,v,k\n" + "".join(f"{i},{i * 5},{i % 7}\n" for i in range(100)),
        "models/staging/_sources.yml": SOURCES,
        **MACROS,
    }
    for (layer, part), ms in _chunks(dag(models)).items():
        files[f"models/{layer}/_schema_{part:03d}.yml"] = (
            "version: 2\n\nmodels:\n" + "\n".join(_dbt_schema_entry(m) for m in ms) + "\n"
        )
        for m in ms:
            files[dbt_sql_path(m)] = dbt_sql(m)
    return files


def files(variant: str, models: int) -> dict[str, str]:
    return yaml_files(models) if variant == "yaml" else dbt_files(models)


def change_one_model(variant: str, models: int, index: int, salt: str) -> tuple[str, str]:
    """(path, new text) of the one file to rewrite so that model `index` changes its SQL (its
    output stays the same shape: `+ 0`-style salts keep columns and types)."""
    m = dag(models)[index]
    if variant == "dbt":
        return dbt_sql_path(m), dbt_sql(m, salt)
    path = yaml_file_of(m, models)
    text = yaml_files(models)[path]
    return path, text.replace(f"    sql: {yaml_sql(m)}\n", f"    sql: {yaml_sql(m, salt)}\n", 1)
