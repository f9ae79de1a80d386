"""A dbt project in the data repo, loaded as our Project: models, sources, seeds, snapshots, tests and
macros rendered with dbt's Jinja (jinja2, no dbt-core), packages read from dbt_packages/."""

from gitops_data.project.dbt.loader import DbtLoader, source_node_name

__all__ = ["DbtLoader", "source_node_name"]
