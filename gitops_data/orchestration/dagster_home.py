"""Where Dagster keeps an instance's files by default, for our storage classes' optional base_dir."""

from __future__ import annotations

import os


def in_dagster_home(*parts: str, what: str) -> str:
    """`$DAGSTER_HOME/<parts>`; `what` names the setting to give instead when DAGSTER_HOME is unset."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError(f"set DAGSTER_HOME or the {what}'s base_dir")
    return os.path.join(home, *parts)
