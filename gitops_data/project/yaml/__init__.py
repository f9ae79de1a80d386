"""The gitops-data YAML front-end."""
