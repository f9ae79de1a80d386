"""A side tool's own virtualenv under benchmarks/ (dbt, tpchgen-cli), created on first use and
reused while its requirements are the same (like case 8's SQLMesh venv)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class Unavailable(RuntimeError):
    """The venv could not be built (pip failed, no network): the reason, for a skipped row."""


def ensure(venv: Path, requirements: list[str], log: Path) -> Path:
    """The venv's python; raises Unavailable with pip's last lines when it cannot be built."""
    python, marker = venv / "bin" / "python", venv / ".installed"
    if python.exists() and marker.exists() and marker.read_text() == " ".join(requirements):
        return python
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        for cmd in (
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
        ):
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise Unavailable(f"{' '.join(cmd[2:5])} failed: {' / '.join(tail)[:300]}")
    marker.write_text(" ".join(requirements))
    return python
