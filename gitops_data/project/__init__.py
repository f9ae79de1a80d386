"""The project specification: YAML schema, loading a project from a Git commit or a folder, validation."""

from gitops_data.project.loader import load_project
from gitops_data.project.nodes import Node, Project

__all__ = ["Node", "Project", "load_project"]
