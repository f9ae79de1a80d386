"""The project specification: YAML schema, loading a project from a Git commit or a folder, validation."""

from gitops_data.spec.loader import load_project
from gitops_data.spec.project import Node, Project

__all__ = ["Node", "Project", "load_project"]
