"""A dbt project in the data repo, loaded as our Project: models, sources, seeds, snapshots, tests and
macros rendered with dbt's Jinja (jinja2, no dbt-core), packages read from dbt_packages/.

The loader (and Jinja with it) is imported on first use, so a gitops-data YAML project and the
CLI's start never pay for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitops_data.project.dbt.loader import DbtLoader, source_node_name

__all__ = ["DbtLoader", "source_node_name"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gitops_data.project.dbt import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
