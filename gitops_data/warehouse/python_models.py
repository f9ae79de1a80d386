"""Run a Python model: its function, from the file as it is at the commit, on Polars LazyFrames."""

from __future__ import annotations

import linecache
import traceback
import types

import polars as pl

from gitops_data.errors import BuildError
from gitops_data.spec.project import Node


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


def run_python_model(node: Node, commit: str, inputs: dict[str, pl.LazyFrame]) -> pl.DataFrame:
    """Call the model's function with its inputs by parameter name; return a collected DataFrame."""
    fn = load_function(node, commit)
    try:
        out = fn(**inputs)
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
    if not isinstance(out, pl.DataFrame):
        raise BuildError(
            f"python model {node.name!r} returned {type(out).__name__}; "
            "it must return a polars DataFrame or LazyFrame"
        )
    if out.width == 0:
        raise BuildError(f"python model {node.name!r} returned a frame with no columns")
    return out
