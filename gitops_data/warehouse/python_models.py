"""Run a Python model: its function, from the file as it is at the commit, on Polars LazyFrames."""

from __future__ import annotations

import linecache
import traceback
import types

import polars as pl

from gitops_data.errors import BuildError
from gitops_data.project.nodes import Node


def load_function(node: Node, commit: str):
    """Execute the model's file (from Git, not the working tree) in a fresh module; return the function."""
    module = types.ModuleType(f"gitops_model_{node.name}")
    module.__file__ = f"{node.python_file} @ {commit[:10]}"
    # the source is not on disk at this commit: register it, so tracebacks show the user's lines
    source = node.python_source or ""
    linecache.cache[module.__file__] = (len(source), None, source.splitlines(True), module.__file__)
    try:
        code = compile(node.python_source or "", module.__file__, "exec")
        exec(code, module.__dict__)  # noqa: S102 - the project's own code, like a dbt Python model
    except (Exception, SystemExit) as exc:  # SystemExit: a model calling sys.exit() fails only itself
        raise BuildError(
            f"{node.python_file}: importing the module of model {node.name!r} failed: {exc!r}"
            + _user_frames(exc, module.__file__)
        ) from None
    assert node.python_function is not None  # every python node names its function
    return getattr(module, node.python_function)


def _user_frames(exc: BaseException, filename: str) -> str:
    """The traceback lines of `exc` that are in the user's file (file, line, function, code)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    if not frames:
        return ""
    return "\n" + "".join(traceback.format_list(frames)).rstrip()


def _is_dbt_model(fn) -> bool:
    """dbt's contract: `def model(dbt, session)`."""
    import inspect

    try:
        return list(inspect.signature(fn).parameters) == ["dbt", "session"]
    except (TypeError, ValueError):
        return False


class _DbtConfig:
    def __init__(self, node: Node):
        self._node = node

    def __call__(self, *args, **kwargs) -> None:
        return None

    def get(self, key: str, default=None):
        return default


class _Dbt:
    """The `dbt` object of dbt-duckdb's Python models: ref() and source() give DuckDB relations over
    the builds the plan gives this model (the same commit's), `this`, `config`, `is_incremental`."""

    def __init__(self, node: Node, session, names: dict[str, str]):
        self._session = session
        self._names = names
        self.this = node.name
        self.config = _DbtConfig(node)
        self.is_incremental = False

    def _relation(self, name: str):
        table = self._names.get(name.lower())
        if table is None:
            raise BuildError(
                f"{name!r} is not an input of this model (only literal dbt.ref()/dbt.source() are)"
            )
        return self._session.table(table)

    def ref(self, *args: str, **kwargs):
        return self._relation(args[-1])

    def source(self, source: str, table: str):
        return self._relation(f"{source}__{table}")


def _call_dbt(fn, node: Node, inputs: dict[str, pl.LazyFrame]):
    """Call a dbt Python model: its inputs registered in an in-memory DuckDB session."""
    import duckdb

    session = duckdb.connect(":memory:")
    names = {}
    for i, (name, frame) in enumerate(inputs.items()):
        table = f"input_{i}"
        session.register(table, frame.collect().to_arrow())
        names[name.lower()] = table
    try:
        return _as_polars(fn(_Dbt(node, session, names), session))
    finally:
        session.close()


def _as_polars(out):
    """What a model returned (pandas, Polars, Arrow, a DuckDB relation) as a Polars DataFrame."""
    if isinstance(out, (pl.DataFrame, pl.LazyFrame)):
        return out
    if hasattr(out, "pl") and callable(out.pl):  # a DuckDB relation
        return out.pl()
    module = type(out).__module__.split(".")[0]
    if module == "pandas":
        return pl.from_pandas(out)
    if module == "pyarrow":
        return pl.from_arrow(out)
    return out


def run_python_model(node: Node, commit: str, inputs: dict[str, pl.LazyFrame]) -> pl.DataFrame:
    """Call the model's function with its inputs by parameter name; return a collected DataFrame."""
    fn = load_function(node, commit)
    try:
        out = _call_dbt(fn, node, inputs) if _is_dbt_model(fn) else fn(**inputs)
    except (Exception, SystemExit) as exc:  # SystemExit: a model calling sys.exit() fails only itself
        raise BuildError(
            f"python model {node.name!r} ({node.python_file}:{node.python_function}) raised {exc!r}"
            + _user_frames(exc, f"{node.python_file} @ {commit[:10]}")
        ) from None
    if isinstance(out, pl.LazyFrame):
        try:
            out = out.collect()
        except (Exception, SystemExit) as exc:  # SystemExit: a model calling sys.exit() fails only itself
            raise BuildError(
                f"python model {node.name!r}: collecting its LazyFrame failed: {exc!r}"
            ) from None
    out = _as_polars(out)
    if not isinstance(out, pl.DataFrame):
        raise BuildError(
            f"python model {node.name!r} returned {type(out).__name__}; "
            "it must return a polars DataFrame or LazyFrame"
        )
    if out.width == 0:
        raise BuildError(f"python model {node.name!r} returned a frame with no columns")
    return out
