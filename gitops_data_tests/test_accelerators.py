"""A compiled accelerator that does not match its library is ignored with one warning, never a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import warnings, json, sys
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import gitops_data.sql as sql
    import sqlglot.parser, sqlglot.generator
    sql.parse_query("select a, count(*) from t group by all")
print(json.dumps({
    "warnings": [str(w.message) for w in caught if w.category.__name__ == "AcceleratorMismatchWarning"],
    "parser": sqlglot.parser.__file__, "generator": sqlglot.generator.__file__,
}))
"""


def _probe(extra_path: Path | None) -> dict:
    import json

    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fake_dist(root: Path, name: str, version: str) -> Path:
    info = root / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root


def test_matching_pair_uses_the_compiled_build_without_a_warning():
    import importlib.metadata

    result = _probe(None)
    assert result["warnings"] == []
    try:
        importlib.metadata.version("sqlglotc")
    except importlib.metadata.PackageNotFoundError:
        return  # no accelerator installed (another Python implementation): nothing more to check
    assert result["parser"].endswith(".so"), result


def test_mismatched_pair_falls_back_to_pure_python_with_one_warning(tmp_path):
    # sqlglotc's metadata says it was built for another release than the installed sqlglot
    result = _probe(_fake_dist(tmp_path, "sqlglotc", "29.0.0"))
    assert len(result["warnings"]) == 1, result
    assert "sqlglotc 29.0.0" in result["warnings"][0] and "sqlglot[c]==" in result["warnings"][0]
    assert result["parser"].endswith("parser.py") and result["generator"].endswith("generator.py"), result
