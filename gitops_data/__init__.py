"""gitops-data: a Git repository of YAML files is the single source of truth for a DuckDB warehouse."""

__version__ = "0.1.0"
