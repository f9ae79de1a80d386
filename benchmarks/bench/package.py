"""Measure one consistent copy of gitops_data: the package as it is when the run starts.

Other people may edit the package while a long run is going; without a snapshot, one run could mix
versions (a warehouse built by the old code, planned by the new). The copy goes first on sys.path
and PYTHONPATH, so this process, every child and the `gitops-data` CLI import it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True).stdout.strip()


def freeze(work: Path) -> dict:
    """Copy the installed gitops_data into `work/package`, import it from there; return its identity."""
    spec = importlib.util.find_spec("gitops_data")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gitops_data is not installed in this interpreter")
    source = Path(next(iter(spec.submodule_search_locations)))
    target = work / "package"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target / "gitops_data", ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
    dirty = _git(source, "status", "--porcelain", "--", ".")
    return {
        "source": str(source),
        "commit": _git(source, "rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(dirty),
        "digest": _digest(target / "gitops_data"),
    }


def changed_since(identity: dict) -> bool:
    """Whether the package's source moved on during the run (the run still measured the snapshot)."""
    return _digest(Path(identity["source"])) != identity["digest"]
