"""Run a Python model: its function, from the file as it is at the commit, on Polars LazyFrames."""

from __future__ import annotations

import types

import polars as pl

from gitops_data.errors import BuildError
from gitops_data.spec.project import Node


def load_function(node: Node, commit: str):
    """Execute the model's file (from Git, not the working tree) in a fresh module; return the function."""
    module = types.ModuleType(f"gitops_model_{node.name}")
    module.__file__ = f"{commit[:10]}:{node.python_file}"
    try:
        code = compile(node.python_source or "", module.__file__, "exec")
        exec(code, module.__dict__)  # noqa: S102 - the project's own code, like a dbt Python model
    except Exception as exc:
        raise BuildError(f"{node.python_file}: importing the module of model {node.name!r} failed: {exc!r}") from None
    return getattr(module, node.python_function)


def run_python_model(node: Node, commit: str, inputs: dict[str, pl.LazyFrame]) -> pl.DataFrame:
    """Call the model's function with its inputs by parameter name; return a collected DataFrame."""
    fn = load_function(node, commit)
    try:
        out = fn(**inputs)
    except Exception as exc:
        raise BuildError(f"python model {node.name!r} ({node.python_file}:{node.python_function}) raised {exc!r}") from None
    if isinstance(out, pl.LazyFrame):
        try:
            out = out.collect()
        except Exception as exc:
            raise BuildError(f"python model {node.name!r}: collecting its LazyFrame failed: {exc!r}") from None
    if not isinstance(out, pl.DataFrame):
        raise BuildError(
            f"python model {node.name!r} returned {type(out).__name__}; it must return a polars DataFrame or LazyFrame"
        )
    if out.width == 0:
        raise BuildError(f"python model {node.name!r} returned a frame with no columns")
    return out
