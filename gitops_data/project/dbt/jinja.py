"""The Jinja side of dbt, on plain jinja2: the environment (dbt's block tags, `return()`), and the
objects models and macros see (relations, columns, `config`, `adapter`, `exceptions`, `modules`).

Nothing here reads a warehouse: what dbt would ask the database while compiling is answered from
the project itself (a relation's columns from its SQL, a constant `statement` by an in-memory DuckDB),
or is a `DbtRenderError` naming what is not supported.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.ext
import yaml
from jinja2 import nodes
from jinja2.runtime import Context, Macro

from gitops_data.project.dbt.template_cache import TEMPLATES

DBT_VERSION = "1.11.0"


class DbtRenderError(Exception):
    """What dbt would compile but gitops-data cannot render (or a compile error of the project)."""


class MacroReturn(Exception):  # noqa: N818 - control flow, as dbt's own
    """`{{ return(x) }}`: unwinds to the macro call, which returns `x`."""

    def __init__(self, value: Any):
        super().__init__("return() outside a macro")
        self.value = value


def macro_return(value: Any = None) -> None:
    raise MacroReturn(value)


class DbtContext(Context):
    """Every call of a Jinja macro catches `return()`, as dbt's MacroGenerator does (macros of the
    same file call each other directly, not through the context)."""

    def call(__self, __obj, *args, **kwargs):  # noqa: N805 - jinja2's own signature
        if isinstance(__obj, Macro):
            try:
                return super().call(__obj, *args, **kwargs)
            except MacroReturn as ret:
                return ret.value
        return super().call(__obj, *args, **kwargs)


class _TestBlock(jinja2.ext.Extension):
    """`{% test name(model, column_name) %}` defines the macro `test_name` (a generic test)."""

    tags = {"test"}

    def parse(self, parser):
        node = nodes.Macro(lineno=next(parser.stream).lineno)
        name = parser.parse_assign_target(name_only=True).name
        parser.parse_signature(node)
        node.name = f"test_{name}"
        node.body = parser.parse_statements(("name:endtest",), drop_needle=True)
        return node


class _SnapshotBlock(jinja2.ext.Extension):
    """`{% snapshot name %}body{% endsnapshot %}` calls `_dbt_snapshot_block(name, caller)`."""

    tags = {"snapshot"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        name = parser.parse_assign_target(name_only=True).name
        body = parser.parse_statements(("name:endsnapshot",), drop_needle=True)
        call = nodes.Call(nodes.Name("_dbt_snapshot_block", "load"), [nodes.Const(name)], [], None, None)
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)


class _IgnoredBlock(jinja2.ext.Extension):
    """`{% docs %}` and `{% materialization %}` blocks are parsed and dropped."""

    tags = {"docs", "materialization"}

    def parse(self, parser):
        token = next(parser.stream)
        while not parser.stream.current.test("block_end"):
            next(parser.stream)
        parser.parse_statements((f"name:end{token.value}",), drop_needle=True)
        return nodes.Output([]).set_lineno(token.lineno)


def _as_bool(value: Any) -> Any:
    return value.strip().lower() == "true" if isinstance(value, str) else value


def _as_number(value: Any) -> Any:
    if isinstance(value, str):
        return float(value) if re.search(r"[.eE]", value) else int(value)
    return value


def make_environment(loader: jinja2.BaseLoader, native: bool = False) -> jinja2.Environment:
    """dbt's Jinja: `do` and loop controls, its block tags, its filters, `return()` in macros."""
    from jinja2.nativetypes import NativeEnvironment

    cls = NativeEnvironment if native else jinja2.Environment
    env = cls(
        loader=loader,
        extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols", _TestBlock, _SnapshotBlock, _IgnoredBlock],
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=-1,
        bytecode_cache=TEMPLATES,
    )
    env.context_class = DbtContext
    env.filters.update(
        as_bool=_as_bool,
        as_native=lambda v: v,
        as_number=_as_number,
        as_text=lambda v: "" if v is None else str(v),
    )
    return env


# --- relations and columns --------------------------------------------------------------------


class Relation(Mapping):
    """What `ref()`, `source()` and `this` return: renders as the node's plain name, which our SQL
    layer resolves to the build the plan picks. A mapping with dbt's keys, so package macros that
    check `obj is mapping and obj.metadata.type` accept it."""

    def __init__(self, name: str, node_type: str = "table", text: str | None = None):
        self.name = self.identifier = self.table = name
        self.database = None
        self.schema = None
        self.type = node_type  # table | view | cte (ephemeral) | external
        self._text = text if text is not None else name
        self._dict: dict[str, Any] = {
            "metadata": {"type": "GitopsDataRelation"},
            "path": {"database": None, "schema": None, "identifier": name},
            "type": node_type,
            "database": None,
            "schema": None,
            "identifier": name,
            "name": name,
        }

    def __str__(self) -> str:
        return self._text

    def renamed(self, name: str) -> None:
        """`this` after the model's own config() gave it an alias."""
        self.name = self.identifier = self.table = self._text = name
        path = dict(self._dict["path"])
        path["identifier"] = name
        self._dict.update(identifier=name, name=name, path=path)

    def __repr__(self) -> str:
        return f"<Relation {self._text}>"

    def __html__(self) -> str:
        return self._text

    def __getitem__(self, key: str) -> Any:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Relation) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    def render(self) -> str:
        return self._text

    def include(self, *args: Any, **kwargs: Any) -> Relation:
        return self

    quote = include
    incorporate = include

    def replace_path(self, **kwargs: Any) -> Relation:
        return self

    @property
    def is_table(self) -> bool:
        return self.type == "table"

    @property
    def is_view(self) -> bool:
        return self.type == "view"

    @property
    def is_cte(self) -> bool:
        return False  # an ephemeral model is a plain name too: the plan inlines it

    @property
    def is_materialized_view(self) -> bool:
        return False


@dataclass(frozen=True)
class Column:
    """A column of a relation, as `adapter.get_columns_in_relation` returns it."""

    column: str
    dtype: str = "unknown"

    @property
    def name(self) -> str:
        return self.column

    @property
    def data_type(self) -> str:
        return self.dtype

    @property
    def quoted(self) -> str:
        return '"' + self.column.replace('"', '""') + '"'

    def is_string(self) -> bool:
        return self.dtype.lower().startswith(("varchar", "text", "string", "char"))

    def is_number(self) -> bool:
        return self.is_integer() or self.is_float() or self.is_numeric()

    def is_integer(self) -> bool:
        return self.dtype.lower().split("(")[0].strip() in (
            "int",
            "integer",
            "bigint",
            "smallint",
            "tinyint",
            "hugeint",
            "int2",
            "int4",
            "int8",
            "ubigint",
            "uinteger",
            "usmallint",
            "utinyint",
            "serial",
            "bigserial",
        )

    def is_float(self) -> bool:
        return self.dtype.lower().split("(")[0].strip() in (
            "float",
            "float4",
            "float8",
            "double",
            "double precision",
            "real",
        )

    def is_numeric(self) -> bool:
        return self.dtype.lower().split("(")[0].strip() in ("numeric", "decimal")

    @property
    def char_size(self) -> int | None:
        found = re.match(r"\s*(?:varchar|character varying|char|text)\s*\((\d+)\)", self.dtype, re.I)
        return int(found.group(1)) if found else None

    def string_size(self) -> int:
        return self.char_size or 256

    def can_expand_to(self, other_column: Any) -> bool:
        return self.is_string() and getattr(other_column, "is_string", lambda: False)()

    def literal(self, value: Any) -> str:
        return f"cast({value} as {self.dtype})"

    @classmethod
    def translate_type(cls, dtype: str) -> str:
        return {"STRING": "TEXT"}.get(dtype.upper(), dtype)


class InferredColumn(Column):
    """A column whose name the project tells (from a model's SQL) but whose type only the warehouse
    knows: asking for the type makes the resource render at build time."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("dtype", "data_type"):
            from gitops_data.project.dbt.late import NeedsWarehouse

            column = object.__getattribute__(self, "column")
            raise NeedsWarehouse(column, f"the type of column {column!r} is the warehouse's")
        return object.__getattribute__(self, name)


class Namespace:
    """`package.macro` lookups (`dbt_utils.star`), resolved lazily."""

    def __init__(self, package: str, lookup: Callable[[str], Any]):
        self._package = package
        self._lookup = lookup

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        found = self._lookup(name)
        if found is None:
            raise DbtRenderError(f"macro {self._package}.{name} does not exist")
        return found

    def __repr__(self) -> str:
        return f"<namespace {self._package}>"


# --- config(), exceptions, modules ---------------------------------------------------------------


class ConfigCall:
    """`{{ config(...) }}` in a model, and `config.get/require` in macros."""

    def __init__(self, values: dict[str, Any], on_set: Callable[[dict[str, Any]], None] | None = None):
        self.values = values
        self._on_set = on_set

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        if args and isinstance(args[0], dict):
            kwargs = {**args[0], **kwargs}
        if self._on_set is not None:
            self._on_set(kwargs)
        return ""

    def get(self, key: str, default: Any = None, validator: Any = None) -> Any:
        return self.values.get(key, default)

    def require(self, key: str, validator: Any = None) -> Any:
        if key not in self.values:
            raise DbtRenderError(f"config {key!r} is required")
        return self.values[key]

    def set(self, key: str, value: Any) -> str:
        return self(**{key: value})


class Exceptions:
    """`exceptions.raise_compiler_error(...)` and friends."""

    @staticmethod
    def raise_compiler_error(message: Any, node: Any = None) -> None:
        raise DbtRenderError(f"compilation error: {message}")

    @staticmethod
    def raise_not_implemented(message: Any) -> None:
        raise DbtRenderError(f"not implemented: {message}")

    @staticmethod
    def warn(message: Any, node: Any = None) -> str:
        return ""

    @staticmethod
    def raise_fail_fast_error(message: Any, node: Any = None) -> None:
        raise DbtRenderError(str(message))

    def __getattr__(self, name: str) -> Any:
        raise DbtRenderError(f"exceptions.{name} is not supported")


def _modules() -> dict[str, Any]:
    """dbt's `modules`: datetime, pytz, re, itertools, json (pytz when installed)."""
    out: dict[str, Any] = {"datetime": datetime, "re": re, "itertools": itertools, "json": json}
    try:
        import pytz  # type: ignore[import-untyped]

        out["pytz"] = pytz
    except ImportError:  # pragma: no cover - pytz comes with pandas, which the project depends on
        pass
    return out


MODULES = _modules()


def tojson(value: Any, default: Any = None, sort_keys: bool = False) -> Any:
    try:
        return json.dumps(value, sort_keys=sort_keys)
    except (TypeError, ValueError):
        return default


def fromjson(text: str, default: Any = None) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def toyaml(value: Any, default: Any = None, sort_keys: bool = False) -> Any:
    try:
        return yaml.safe_dump(value, sort_keys=sort_keys)
    except yaml.YAMLError:
        return default


def fromyaml(text: str, default: Any = None) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return default


def set_strict(value: Any) -> set:
    return set(value)


def try_set(value: Any, default: Any = None) -> Any:
    try:
        return set(value)
    except TypeError:
        return default


def try_zip(*args: Any, default: Any = None) -> Any:
    try:
        return zip(*args, strict=False)
    except TypeError:
        return default


def local_md5(value: str) -> str:
    return hashlib.md5(value.encode()).hexdigest()  # noqa: S324 - dbt's own helper, not security


class Unsupported:
    """A context name dbt offers that gitops-data cannot (`run_started_at`, `graph`, ...): any use
    is a render error that says why."""

    def __init__(self, name: str, why: str):
        self._name = name
        self._why = why

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise DbtRenderError(f"{self._name} is not supported: {self._why}")

    __call__ = _fail
    __str__ = _fail
    __iter__ = _fail
    __bool__ = _fail
    __getitem__ = _fail

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._fail()


# --- statements: only constant queries ---------------------------------------------------------


class ResultTable:
    """What `run_query` / `load_result(...)['table']` return: rows and columns, agate-like."""

    def __init__(self, names: list[str], rows: list[tuple]):
        self.column_names = list(names)
        self.rows = [tuple(r) for r in rows]
        self.columns = _Columns(
            _ResultColumn(n, [r[i] for r in self.rows]) for i, n in enumerate(self.column_names)
        )

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple:
        return self.rows[i]

    def print_table(self, *args: Any, **kwargs: Any) -> str:
        return ""


class _Columns(list):
    """agate's MappedSequence of columns: a list, and a mapping by column name."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for col in self:
                if col.name == key:
                    return col
            raise KeyError(key)
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return [c.name for c in self]

    def values(self) -> list:
        return list(self)

    def items(self) -> list[tuple[str, Any]]:
        return [(c.name, c) for c in self]


class _ResultColumn:
    def __init__(self, name: str, values: list):
        self.name = name
        self._values = values

    def values(self) -> list:
        return list(self._values)


# --- where an error happened --------------------------------------------------------------------


def template_frames(exc: BaseException, files: set[str]) -> list[tuple[str, int]]:
    """(file, line) of the project's templates in the traceback of `exc`, outermost first. jinja2
    rewrites template frames to carry the template's file name and line."""
    return [
        (f.filename, f.lineno or 0) for f in traceback.extract_tb(exc.__traceback__) if f.filename in files
    ]


def describe(exc: BaseException) -> str:
    """A one-line message for an error raised while rendering."""
    if isinstance(exc, jinja2.UndefinedError):
        return (
            f"{exc.message or exc} (an unknown name: a macro that does not exist, or a package not installed)"
        )
    if isinstance(exc, (DbtRenderError, MacroReturn)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
