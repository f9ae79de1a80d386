"""gitops-data: a Git repository of YAML files is the single source of truth for a data warehouse."""

from gitops_data.accelerators import guard_sqlglotc

guard_sqlglotc()

__version__ = "0.1.0"
