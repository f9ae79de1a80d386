"""dbt tests -> our checks. The four generic tests dbt ships map onto native checks (unique,
not_null, accepted_values -> isin, relationships -> relationship); any other generic test (the
project's own `{% test %}`, a package's) and every singular test become a `returns_no_rows` check:
the rendered query, which fails when it returns rows, as dbt's tests do."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from gitops_data.naming import quote

BUILTIN = ("unique", "not_null", "accepted_values", "relationships")
_CONFIG_KEYS = {
    "severity",
    "where",
    "enabled",
    "tags",
    "meta",
    "limit",
    "error_if",
    "warn_if",
    "fail_calc",
    "store_failures",
    "store_failures_as",
    "alias",
    "schema",
    "database",
    "group",
}
_NOT_ARGS = _CONFIG_KEYS | {"config", "name", "description", "arguments", "test_name", "column_name"}


class TestMappingError(ValueError):
    """A test that cannot become a check; `line` is the YAML line."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class TestSpec:
    """One generic test as declared in a properties YAML file."""

    test: str  # unique | accepted_values | package.name | ...
    args: dict[str, Any]
    config: dict[str, Any]
    name: str | None
    column: str | None
    line: int | None

    @property
    def severity(self) -> str:
        return severity_of(self.config, self.line)


def severity_of(config: dict[str, Any], line: int | None) -> str:
    value = str(config.get("severity", "error")).lower()
    if value not in ("error", "warn"):
        raise TestMappingError(f"severity must be error or warn, not {config.get('severity')!r}", line)
    return value


_CONDITION = re.compile(r"^\s*(=|==|!=|<>|<=|>=|<|>)\s*-?\d+(\.\d+)?\s*$")


def check_config(config: dict[str, Any], line: int | None) -> None:
    """The test configs that change what a failure means must be what dbt accepts: `warn_if` and
    `error_if` a comparison with a number (`>10`, `!= 0`), `limit` a number."""
    for key in ("warn_if", "error_if"):
        if key in config and not _CONDITION.match(str(config[key])):
            raise TestMappingError(
                f"{key} must be a comparison with a number (like '>10' or '!= 0'), not {config[key]!r}", line
            )
    if config.get("limit") is not None and not str(config["limit"]).strip().isdigit():
        raise TestMappingError(f"limit must be a whole number, not {config['limit']!r}", line)


def _default_outcome(config: dict[str, Any]) -> bool:
    """True when the test fails exactly when its query returns rows (dbt's defaults)."""
    return (
        str(config.get("fail_calc", "count(*)")).replace(" ", "").lower() == "count(*)"
        and str(config.get("warn_if", "!= 0")).replace(" ", "") == "!=0"
        and str(config.get("error_if", "!= 0")).replace(" ", "") == "!=0"
    )


def stored_as(config: dict[str, Any], line: int | None) -> str | None:
    """How a test's failing rows are kept (dbt's `store_failures` / `store_failures_as`): "table"
    or "view" beside the build, None when they are not (`store_failures_as` wins, as in dbt)."""
    as_ = config.get("store_failures_as")
    if as_ is not None:
        value = str(as_).strip().lower()
        if value not in ("table", "view", "ephemeral"):
            raise TestMappingError(f"store_failures_as must be table, view or ephemeral, not {as_!r}", line)
        return None if value == "ephemeral" else value
    flag = config.get("store_failures")
    if flag is None or flag is False or str(flag).strip().lower() in ("false", "none", ""):
        return None
    if flag is True or str(flag).strip().lower() == "true":
        return "table"
    raise TestMappingError(f"store_failures must be true or false, not {flag!r}", line)


def test_queries(sql: str, config: dict[str, Any], severity: str) -> list[tuple[str, str, str]]:
    """(query of failing rows, severity, name suffix) for a dbt test's query, as dbt judges it:
    `fail_calc` over the (limited) failing rows, compared by `error_if` (an error when the severity
    is error) and `warn_if` (a warning otherwise). With dbt's defaults the query itself is the check."""
    if _default_outcome(config):
        return [(sql, severity, "")]
    fail_calc = str(config.get("fail_calc", "count(*)"))
    warn_if = str(config.get("warn_if", "!= 0")).strip()
    error_if = str(config.get("error_if", "!= 0")).strip()
    limit = f" limit {int(str(config['limit']).strip())}" if config.get("limit") is not None else ""
    judged = (
        f"select {fail_calc} as failures, ({fail_calc}) {warn_if} as should_warn, "
        f"({fail_calc}) {error_if} as should_error from ({sql}{limit}) as dbt_internal_test"
    )
    if severity == "warn":
        return [(f"select failures from ({judged}) as t where should_warn", "warn", "")]
    return [
        (f"select failures from ({judged}) as t where should_error", "error", ""),
        (f"select failures from ({judged}) as t where should_warn and not should_error", "warn", "__warn"),
    ]


def read_tests(
    entries: Any, column: str | None, line: int | None, base_config: dict[str, Any]
) -> list[TestSpec]:
    """The tests of a `data_tests:` (or `tests:`) list, with their configs over `base_config`."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise TestMappingError("data_tests must be a list", line)
    out = []
    line = getattr(entries, "line", None) or line  # a bare name has no line of its own: the list's
    for entry in entries:
        where = getattr(entry, "line", None) or line
        if isinstance(entry, str):
            out.append(TestSpec(entry, {}, dict(base_config), None, column, where))
            continue
        if not isinstance(entry, dict) or not entry:
            raise TestMappingError("a test is a name or a mapping {test_name: {arguments}}", where)
        if "test_name" in entry:
            test, body = entry["test_name"], entry
        elif len(entry) == 1:
            test, body = next(iter(entry.items()))
            body = body if body is not None else {}
        else:
            raise TestMappingError(f"a test names exactly one test, got {sorted(entry)}", where)
        if not isinstance(test, str) or not isinstance(body, dict):
            raise TestMappingError(f"test {test!r}: its arguments must be a mapping", where)
        config = {**base_config, **{k: v for k, v in body.items() if k in _CONFIG_KEYS}}
        if isinstance(body.get("config"), dict):
            config.update(body["config"])
        args = dict(body["arguments"]) if isinstance(body.get("arguments"), dict) else {}
        args.update({k: v for k, v in body.items() if k not in _NOT_ARGS})
        name = body.get("name") if isinstance(body.get("name"), str) else None
        col = body.get("column_name", column)
        out.append(TestSpec(test, args, config, name, col if isinstance(col, str) else column, where))
    return out


@dataclass
class NodeChecks:
    """What the tests of one node become: per-column settings and model-level checks (YAML form)."""

    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def column(self, name: str) -> dict[str, Any]:
        return self.columns.setdefault(name, {})


def _literal(value: Any, quoted: bool) -> str:
    if not quoted:
        return str(value)
    return exp.convert(value).sql(dialect="duckdb")


def builtin_sql(spec: TestSpec, model: str, to: str | None, stored: bool = False) -> str:
    """dbt's own query for a built-in test, over `model` (a name or a filtered subquery);
    `stored`: with the columns dbt's query has when it stores its failures."""
    col = quote(spec.column or "")
    if spec.test == "not_null":
        return f"select {'*' if stored else col} from {model} where {col} is null"
    if spec.test == "unique" and stored:
        return (
            f"select {col} as unique_field, count(*) as n_records from {model} where {col} is not null "
            f"group by {col} having count(*) > 1"
        )
    if spec.test == "unique":
        return f"select {col} from {model} where {col} is not null group by {col} having count(*) > 1"
    if spec.test == "accepted_values":  # dbt's own query: with quote: false, values are expressions
        quoted = spec.args.get("quote", True) is not False
        values = ", ".join(_literal(v, quoted) for v in spec.args["values"])
        return (
            f"select * from (select {col} as value_field, count(*) as n_records from {model} "
            f"group by {col}) as all_values where value_field not in ({values})"
        )
    field_ = quote(str(spec.args["field"]))
    picked = f"c.{col} as from_field" if stored else f"c.{col}"
    return (
        f"select {picked} from {model} as c left join {to} as p on c.{col} = p.{field_} "
        f"where c.{col} is not null and p.{field_} is null"
    )


def map_tests(
    specs: list[TestSpec],
    node: str,
    relation: Callable[[str, int | None], str],
    render_generic: Callable[[TestSpec, str | None], tuple[str, dict[str, Any]]],
    errors: list[TestMappingError],
    queries_only: bool = False,
) -> NodeChecks:
    """The checks `specs` become on node `node`. `relation` turns a `ref(...)`/`source(...)` text
    into a node name; `render_generic(spec, where)` renders a test to SQL (a query of failing rows)
    and the configs its macro set (`fail_calc`, `severity`, ...; the YAML's win over them).
    Problems go to `errors`; the tests that map are kept. `queries_only`: every test as a query of
    failing rows (an ephemeral model's, run on its inlined query)."""
    out = NodeChecks()
    severities: dict[tuple[str, str], str] = {}
    for spec in specs:
        try:
            if spec.config.get("enabled") is False:
                continue
            check_config(spec.config, spec.line)
            _add(out, spec, node, relation, render_generic, severities, queries_only)
        except TestMappingError as exc:
            errors.append(exc)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # arguments of unexpected shapes
            errors.append(
                TestMappingError(f"test {spec.test!r}: cannot use its arguments ({exc})", spec.line)
            )
    for col in dict.fromkeys(c for c, _ in severities):
        not_null, unique = severities.get((col, "not_null")), severities.get((col, "unique"))
        if not_null and unique and not_null != unique:  # a column has one severity: unique goes model-level
            out.columns[col].pop("unique", None)
            out.checks.append({"unique": [col], "severity": unique, "name": f"{col}__unique"})
        out.column(col)["severity"] = not_null or unique
    return out


def _add(
    out: NodeChecks,
    spec: TestSpec,
    node: str,
    relation: Callable[[str, int | None], str],
    render_generic: Callable[[TestSpec, str | None], tuple[str, dict[str, Any]]],
    severities: dict[tuple[str, str], str],
    queries_only: bool = False,
) -> None:
    test, col = spec.test, spec.column
    builtin = test in BUILTIN or (test.startswith("dbt.") and test[4:] in BUILTIN)
    test = test[4:] if test.startswith("dbt.") else test
    if builtin and col is None:
        raise TestMappingError(f"{test} is a column test: declare it under a column", spec.line)
    if test == "accepted_values" and builtin and not isinstance(spec.args.get("values"), list):
        raise TestMappingError("accepted_values needs `values:` (a list)", spec.line)
    if test == "relationships" and builtin and not {"to", "field"} <= set(spec.args):
        raise TestMappingError("relationships needs `to:` (ref(...) or source(...)) and `field:`", spec.line)
    label = f"{test}" + (f" on {col}" if col else "")
    spec = TestSpec(test, spec.args, spec.config, spec.name, col, spec.line)
    where = spec.config.get("where")
    if not builtin:
        sql, macro_config = render_generic(spec, str(where) if where else None)
        config = {**macro_config, **spec.config}
        if config.get("enabled") is False:
            return
        check_config(config, spec.line)
        name = spec.name or (f"{col}__{test.split('.')[-1]}" if col else test.split(".")[-1])
        _query_checks(
            out, sql, config, label, severity_of(config, spec.line), name, stored_as(config, spec.line)
        )
        return
    severity = spec.severity
    stored = stored_as(spec.config, spec.line)
    unquoted = (
        test == "accepted_values"
        and spec.args.get("quote", True) is False
        and not all(isinstance(v, (int, float)) for v in spec.args["values"])
    )
    if queries_only or where or unquoted or stored or not _default_outcome(spec.config):
        to = relation(str(spec.args["to"]), spec.line) if test == "relationships" else None
        model = f"(select * from {quote(node)} where {where}) as dbt_subquery" if where else quote(node)
        sql = builtin_sql(spec, model, quote(to) if to else None, stored is not None)
        what = f"{label} where {where}" if where else label
        _query_checks(out, sql, spec.config, what, severity, spec.name or f"{col}__{test}", stored)
        return
    assert col is not None
    if test in ("unique", "not_null") and spec.name:
        # a named check is model-level (a column's unique/not_null have no names of their own)
        if test == "unique":
            out.checks.append({"unique": [col], "severity": severity, "name": spec.name})
        else:
            out.checks.append(
                {"expression": f"{quote(col)} is not null", "severity": severity, "name": spec.name}
            )
    elif test == "unique":
        out.column(col)["unique"] = True
        severities[(col, test)] = severity
    elif test == "not_null":
        out.column(col)["nullable"] = False
        severities[(col, test)] = severity
    elif test == "accepted_values":
        check: dict[str, Any] = {"isin": list(spec.args["values"]), "severity": severity}
        if spec.name:
            check["name"] = spec.name
        out.column(col).setdefault("checks", []).append(check)
    else:
        to = relation(str(spec.args["to"]), spec.line)
        check = {
            "relationship": {"column": col, "to": to, "field": str(spec.args["field"])},
            "severity": severity,
        }
        if spec.name:
            check["name"] = spec.name
        out.checks.append(check)


def _query_checks(
    out: NodeChecks,
    sql: str,
    config: dict[str, Any],
    label: str,
    severity: str,
    name: str,
    stored: str | None = None,
) -> None:
    out.checks += query_checks(sql, config, label, severity, name, stored)


def query_checks(
    sql: str, config: dict[str, Any], label: str, severity: str, name: str, stored: str | None
) -> list[dict[str, Any]]:
    """The `returns_no_rows` checks (YAML form) of a test's query `sql` of failing rows, judged as
    dbt judges it (see `test_queries`); `stored` ("table" / "view"): the first of them also keeps
    the failing rows (the test's own query, limited as dbt limits them) beside the build."""
    out = []
    for query, level, suffix in test_queries(sql, config, severity):
        check = _query_check(query, label + (" (warn_if)" if suffix else ""), level, name + suffix)
        if stored and not suffix:
            limit = f" limit {int(str(config['limit']).strip())}" if config.get("limit") is not None else ""
            rows = f"select * from ({sql}{limit}) as dbt_internal_test" if limit else sql
            check["args"]["store_failures"] = {"sql": rows, "as": stored}
        out.append(check)
    return out


def _query_check(sql: str, label: str, severity: str, name: str) -> dict[str, Any]:
    return {
        "kind": "returns_no_rows",
        "args": {"sql": sql, "test": label},
        "severity": severity,
        "name": name,
    }
