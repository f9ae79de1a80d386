"""The YAML format, as pydantic models. This is the user-facing contract: extend it, do not break it."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

Severity = Literal["error", "warn"]
AlertEvent = Literal["check_failed", "run_failed", "published", "blocked", "drift"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float) -> float:
    """'90s', '15m', '24h', '7d', '1h30m' -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a duration looks like '30m', '24h' or '7d'")
    s = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"cannot read duration {text!r}; use e.g. '30m', '24h', '7d'")
    return sum(float(n) * _UNITS[u] for n, u in parts)


# A list of column names; a single name may be written without brackets.
Columns = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _min_max(kind: str, args: Any) -> dict:
    if isinstance(args, (list, tuple)) and len(args) == 2:
        args = {"min": args[0], "max": args[1]}
    if not isinstance(args, dict) or not set(args) <= {"min", "max"} or not args:
        raise ValueError(f"{kind} takes {{min: ..., max: ...}} (either may be left out)")
    return {"min": args.get("min"), "max": args.get("max")}


def _column_list(kind: str, args: Any) -> list[str]:
    if isinstance(args, str):
        args = [args]
    if not isinstance(args, list) or not args or not all(isinstance(c, str) and c for c in args):
        raise ValueError(f"{kind} takes a non-empty list of column names")
    return list(args)


def _scalar(kind: str, args: Any) -> Any:
    if isinstance(args, (dict, list)) or args is None:
        raise ValueError(f"{kind} takes one value, e.g. {{{kind}: 0}}")
    return args


def _values(kind: str, args: Any) -> list:
    if not isinstance(args, list) or not args:
        raise ValueError(f"{kind} takes a non-empty list of values")
    return list(args)


def _regex(kind: str, args: Any) -> str:
    if not isinstance(args, str):
        raise ValueError(f"{kind} takes a regular expression string")
    try:
        re.compile(args)
    except re.error as exc:
        raise ValueError(f"{kind}: invalid regular expression {args!r}: {exc}") from exc
    return args


def _true(kind: str, args: Any) -> bool:
    if args is not True:
        raise ValueError(f"{kind} takes `true` (or write just `- {kind}`)")
    return True


def _relationship(kind: str, args: Any) -> dict:
    if (
        not isinstance(args, dict)
        or not {"column", "to"} <= set(args)
        or not set(args) <= {"column", "to", "field"}
    ):
        raise ValueError("relationship takes {column: ..., to: <model>, field: <column of that model>}")
    return {"column": args["column"], "to": args["to"], "field": args.get("field", args["column"])}


def _expression(kind: str, args: Any) -> dict:
    if isinstance(args, str):
        args = {"sql": args}
    if not isinstance(args, dict) or len(args) != 1 or next(iter(args)) not in ("sql", "polars"):
        raise ValueError("expression takes an SQL string, or {sql: ...} or {polars: ...}")
    if not isinstance(next(iter(args.values())), str):
        raise ValueError("expression takes a string")
    if "sql" in args:
        from gitops_data.sql import parse_expression

        parse_expression(args["sql"])
    return dict(args)


def _freshness(kind: str, args: Any) -> dict:
    if not isinstance(args, dict) or set(args) != {"column", "max_age"}:
        raise ValueError("freshness takes {column: <timestamp column>, max_age: '24h'}")
    return {"column": args["column"], "max_age": parse_duration(args["max_age"])}


class _CheckBase(_Strict):
    """One declared check: `{kind: args}` in YAML, plus optional `severity` and `name`."""

    KINDS: ClassVar[dict[str, Any]] = {}
    kind: str
    args: Any = None
    severity: Severity = "error"
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {data: True}
        if not isinstance(data, dict):
            raise ValueError("a check is a mapping like {ge: 0} or a bare name like not_empty")
        if "kind" in data:
            return data
        data = dict(data)
        extra = {k: data.pop(k) for k in ("severity", "name") if k in data}
        if len(data) != 1:
            raise ValueError(f"a check names exactly one kind, got {sorted(data) or 'none'}")
        kind, args = next(iter(data.items()))
        if kind not in cls.KINDS:
            raise ValueError(f"unknown check {kind!r}; expected one of: {', '.join(sorted(cls.KINDS))}")
        return {"kind": kind, "args": cls.KINDS[kind](kind, args), **extra}

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


class ColumnCheck(_CheckBase):
    KINDS: ClassVar[dict[str, Any]] = {
        "ge": _scalar,
        "gt": _scalar,
        "le": _scalar,
        "lt": _scalar,
        "between": _min_max,
        "isin": _values,
        "notin": _values,
        "str_matches": _regex,
        "str_length": _min_max,
    }


class ModelCheck(_CheckBase):
    KINDS: ClassVar[dict[str, Any]] = {
        "row_count": _min_max,
        "unique": _column_list,
        "not_empty": _true,
        "relationship": _relationship,
        "expression": _expression,
        "freshness": _freshness,
    }


class ColumnSpec(_Strict):
    type: str | None = None
    description: str | None = None
    nullable: bool | None = None
    unique: bool = False
    severity: Severity = "error"
    checks: list[ColumnCheck] = Field(default_factory=list)


class _NodeSpec(_Strict):
    name: str
    description: str | None = None
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    checks: list[ModelCheck] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    owner: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("columns", mode="before")
    @classmethod
    def _none_columns(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (ColumnSpec() if spec is None else spec) for k, spec in v.items()}
        return v


class SourceSpec(_NodeSpec):
    path: str | None = None
    table: str | None = None
    format: Literal["csv", "parquet", "json"] | None = None

    @model_validator(mode="after")
    def _one_location(self) -> SourceSpec:
        if (self.path is None) == (self.table is None):
            raise ValueError("a source needs exactly one of `path` (a file in the repo) or `table`")
        return self


class SeedSpec(_NodeSpec):
    path: str


class IncrementalSpec(_Strict):
    """An incremental model: each run appends what is new since the last build (a segment)."""

    column: str = Field(description="time or id column; rows above the last build's maximum are new")
    lookback: float | str | None = Field(
        default=None,
        description="re-read this much before the maximum: a number, or a duration like '2h' "
        "for time columns",
    )
    unique_key: Columns = Field(default_factory=list, description="upsert: the latest row per key wins")
    forward_only: bool = Field(
        default=False, description="a change of the model keeps the history instead of rebuilding"
    )
    compact_after: int = Field(
        default=10, ge=2, description="merge the segments into one table when there are more"
    )

    @model_validator(mode="after")
    def _lookback_needs_key(self) -> IncrementalSpec:
        if self.lookback is not None and not self.unique_key:
            raise ValueError("lookback re-reads rows already loaded: it needs a unique_key to replace them")
        if isinstance(self.lookback, str):
            parse_duration(self.lookback)
        return self


Materialized = Literal["table", "view", "ephemeral"]


class ModelSpec(_NodeSpec):
    sql: str | None = None
    sql_file: str | None = None
    python: str | None = None
    incremental: IncrementalSpec | None = None
    materialized: Materialized | None = Field(
        default=None,
        description="table (default), view (over the upstream builds), or ephemeral (inlined downstream)",
    )

    @model_validator(mode="after")
    def _one_body(self) -> ModelSpec:
        given = [k for k in ("sql", "sql_file", "python") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a model needs exactly one of `sql`, `sql_file` or `python` (got "
                + (", ".join(given) or "none")
                + ")"
            )
        if self.incremental is not None and self.python is not None:
            raise ValueError("incremental models are SQL models (`sql` or `sql_file`)")
        if self.materialized in ("view", "ephemeral"):
            if self.python is not None:
                raise ValueError(
                    f"a Python model is a table; it cannot be materialized as {self.materialized}"
                )
            if self.incremental is not None:
                raise ValueError(f"an incremental model keeps its history in tables; not {self.materialized}")
        return self


class SnapshotSpec(_NodeSpec):
    """SCD-2 history of a source or model: one row version per change, with valid_from/valid_to."""

    source: str
    unique_key: Columns
    strategy: Literal["timestamp", "check"]
    updated_at: str | None = None
    check_cols: list[str] | None = Field(
        default=None, description="columns compared by `check` (default: all)"
    )
    invalidate_hard_deletes: bool = True
    compact_after: int = Field(default=20, ge=2)

    @model_validator(mode="after")
    def _strategy_args(self) -> SnapshotSpec:
        if not self.unique_key:
            raise ValueError("unique_key needs at least one column")
        if self.strategy == "timestamp" and not self.updated_at:
            raise ValueError(
                "strategy timestamp needs `updated_at` (the column that changes with each update)"
            )
        if self.strategy == "check" and self.updated_at:
            raise ValueError(
                "`updated_at` goes with strategy timestamp; strategy check compares `check_cols`"
            )
        return self


class ScheduleSpec(_Strict):
    name: str
    cron: str
    timezone: str = "UTC"
    select: list[str] = Field(default_factory=list, description="model names or tag:<tag>; empty = all")
    ref: str | None = None
    description: str | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        fields = v.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[\d*/,\-A-Za-z?]+", f) for f in fields):
            raise ValueError(f"cron {v!r} must have 5 fields: minute hour day-of-month month day-of-week")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r} (use an IANA name like Europe/Berlin or UTC)") from None
        return v


class AlertSpec(_Strict):
    name: str
    on: list[AlertEvent]
    webhook: str | None = None
    file: str | None = None
    retries: int = Field(default=3, ge=0, le=10)

    @model_validator(mode="after")
    def _one_target(self) -> AlertSpec:
        if (self.webhook is None) == (self.file is None):
            raise ValueError("an alert needs exactly one of `webhook` (URL) or `file` (a log file path)")
        if self.webhook is not None and not self.webhook.startswith(("http://", "https://")):
            raise ValueError("webhook must be an http:// or https:// URL")
        return self


class Retention(_Strict):
    publishes: int = Field(
        default=10, ge=1, description="publishes per environment whose builds stay for rollback"
    )
    days: float | None = Field(
        default=None, gt=0, description="also keep the builds of publishes younger than this"
    )
    gc_after_publish: bool = Field(default=True, description="collect garbage right after each publish")


class DbtProjectSettings(_Strict):
    """`dbt_project:` in gitops_data.yaml: the folder holding dbt_project.yml (a path, or a mapping
    with `path`), the `target.name` models see, and vars (like `dbt run --vars`)."""

    path: str = "."
    target: str = Field(default="prod", description="target.name while rendering (the same for every branch)")
    vars: dict[str, Any] = Field(default_factory=dict, description="override the project's vars")

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data


class Settings(_Strict):
    """`gitops_data.yaml` at the repository root."""

    name: str = "gitops_data"
    internal_schema: str = "gitops_internal"
    external_schema: str = "analytics"
    meta_schema: str = "gitops_meta"
    production_ref: str = "main"
    branches: str | list[str] = Field(
        default="*",
        description="fnmatch pattern(s) of the branches the sensor builds environments for (the "
        "production ref always); default all",
    )
    exclude: list[str] = Field(default_factory=list, description="globs of YAML files that are not ours")
    yaml: list[str] | None = Field(
        default=None,
        description="where gitops-data YAML lives (folders, files or globs); unset: anywhere, and in a dbt "
        "project any YAML outside dbt's folders that holds a gitops-data section",
    )
    retention: Retention = Field(default_factory=Retention)
    dialect: str = Field(
        default="duckdb", description="the SQL dialect models are written in (sqlglot's names)"
    )
    consumers: list[str] = Field(
        default_factory=list, description="warehouse roles that may read the external schemas (PostgreSQL)"
    )
    materialized_by_tag: dict[str, Materialized] = Field(
        default_factory=dict, description="default materialization of SQL models by tag (first tag wins)"
    )
    dbt_project: DbtProjectSettings | None = Field(
        default=None,
        description="a dbt project in this folder (dbt_project.yml) is loaded as the project's models",
    )

    @field_validator("yaml", mode="before")
    @classmethod
    def _yaml_paths(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("dialect")
    @classmethod
    def _dialect(cls, v: str) -> str:
        from sqlglot.dialects.dialect import Dialect

        try:
            Dialect.get_or_raise(v)
        except ValueError:
            raise ValueError(
                f"unknown SQL dialect {v!r} (use sqlglot's names: duckdb, postgres, ...)"
            ) from None
        return v.lower()


class FileDefaults(_Strict):
    """A YAML file's `defaults:`, for the models it declares."""

    materialized: Materialized | None = None


SECTIONS: dict[str, type[_Strict]] = {
    "sources": SourceSpec,
    "seeds": SeedSpec,
    "models": ModelSpec,
    "snapshots": SnapshotSpec,
    "schedules": ScheduleSpec,
    "alerts": AlertSpec,
}
SETTINGS_FILE = "gitops_data.yaml"
