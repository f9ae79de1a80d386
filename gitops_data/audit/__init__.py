"""Audit: the declared checks of a node, turned into pandera schemas and SQL, run against a build."""
