"""Compiled accelerators that must match the library they replace, checked before it is imported.

sqlglotc installs compiled modules into sqlglot's own package folder, built from exactly one sqlglot
release; Python prefers them to the `.py` files beside them. Beside another sqlglot release they
break at import (`AttributeError: REF`), so a mismatched pair is detected here and the compiled
modules are skipped: sqlglot then runs as pure Python, with one warning that says how to fix it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType


class AcceleratorMismatchWarning(RuntimeWarning):
    """A compiled accelerator was built for another release of its library and is not used."""


class _PurePythonFinder(importlib.abc.MetaPathFinder):
    """Finds a package's modules from their `.py` sources only, never from compiled extensions."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.package and not fullname.startswith(self.package + "."):
            return None
        name = fullname.rpartition(".")[2]
        for entry in path if path is not None else sys.path:
            base = Path(entry or ".") / name
            if (base / "__init__.py").is_file():
                return importlib.util.spec_from_file_location(
                    fullname, base / "__init__.py", submodule_search_locations=[str(base)]
                )
            if base.with_suffix(".py").is_file():
                return importlib.util.spec_from_file_location(fullname, base.with_suffix(".py"))
        return None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def guard_sqlglotc() -> bool:
    """Skip sqlglotc's compiled modules unless they were built for the installed sqlglot.

    Returns True when they are skipped. Must run before sqlglot is first imported.
    """
    compiled, library = _version("sqlglotc"), _version("sqlglot")
    if compiled is None or library is None or compiled == library:
        return False
    if not any(isinstance(f, _PurePythonFinder) and f.package == "sqlglot" for f in sys.meta_path):
        sys.meta_path.insert(0, _PurePythonFinder("sqlglot"))
    late = " (sqlglot was imported before gitops_data: restart without importing it first)" * (
        "sqlglot" in sys.modules
    )
    warnings.warn(
        f"sqlglotc {compiled} is a compiled build of sqlglot {compiled}, but sqlglot {library} is "
        f"installed: using sqlglot without it, about 2x slower to parse{late}. "
        f'Fix: pip install "sqlglot[c]=={library}" (or uninstall sqlglotc)',
        AcceleratorMismatchWarning,
        stacklevel=2,
    )
    return True
