"""Run a Python model: its function, from the file as it is at the commit, on Polars LazyFrames."""

from __future__ import annotations

import linecache
import traceback
import types

import polars as pl

from gitops_data.errors import BuildError
from gitops_data.project.nodes import Node


def _module_file(node: Node, commit: str) -> str:
    """The name the model's module is compiled under (its source is from the commit, not the disk)."""
    return f"{node.python_file} @ {commit[:10]}"


def load_function(node: Node, commit: str):
    """Execute the model's file (from Git, not the working tree) in a fresh module; return the function."""
    module = types.ModuleType(f"gitops_model_{node.name}")
    module.__file__ = _module_file(node, commit)
    # the source is not on disk at this commit: register it, so tracebacks show the user's lines
    source = node.python_source or ""
    linecache.cache[module.__file__] = (len(source), None, source.splitlines(True), module.__file__)
    try:
        code = compile(node.python_source or "", module.__file__, "exec")
        exec(code, module.__dict__)  # noqa: S102 - the project's own code, like a dbt Python model
    except (Exception, SystemExit) as exc:  # SystemExit: a model calling sys.exit() fails only itself
        line = exc.lineno if isinstance(exc, SyntaxError) else None
        raise BuildError(model_error(exc, node, commit, "importing its module", line)) from None
    assert node.python_function is not None  # every python node names its function
    return getattr(module, node.python_function)


def user_frames(exc: BaseException, node: Node, commit: str) -> list[traceback.FrameSummary]:
    """The frames of `exc`'s traceback in the user's model file, innermost last."""
    filename = _module_file(node, commit)
    return [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]


def _message(exc: BaseException) -> str:
    """`Class: message`, the message's lines joined (Polars adds the expression on further lines)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def model_error(
    exc: BaseException, node: Node, commit: str, phase: str, fallback_line: int | None = None
) -> str:
    """One message for an exception of a Python model: the innermost line of the user's file it
    passed through (else `fallback_line`, e.g. the function's `def`) as file:line first, the
    exception, then the user's frames (outermost first), each `file:line in function: code`."""
    frames = user_frames(exc, node, commit)
    line = frames[-1].lineno if frames else fallback_line
    where = f"{node.python_file}:{line}" if line else str(node.python_file)
    head = f"{where}: python model {node.name!r} failed {phase}: {_message(exc)}"
    trace = [f"  {node.python_file}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames]
    return "\n".join([head, *trace])


def _def_line(fn) -> int | None:
    code = getattr(fn, "__code__", None)
    return code.co_firstlineno if code is not None else None


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
        raise BuildError(model_error(exc, node, commit, "when called", _def_line(fn))) from None
    if isinstance(out, pl.LazyFrame):
        try:
            out = out.collect()
        except (Exception, SystemExit) as exc:  # SystemExit: a model calling sys.exit() fails only itself
            raise BuildError(
                model_error(exc, node, commit, "while its frame was computed", _def_line(fn))
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
