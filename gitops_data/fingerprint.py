"""Fingerprints: a hash of everything that determines a node's data, and nothing else.

Data fingerprint = kind + canonical SQL (sqlglot, so whitespace and comments do not count) or the
Python file's content, or the seed/source file content, or the external table's name; declared
column types; and the fingerprints of the upstreams (their names only, for incremental models and
snapshots, whose builds accumulate history). Descriptions, tags, owners and checks are
metadata: they never change a fingerprint. Checks have their own hash (`check_hash`), so a change
to checks only re-audits the existing build.

A model's materialization (view or ephemeral instead of a table) is not data: it is part of the
build's fingerprint (a view is a different object from a table) but not of the *data* fingerprint
that downstream fingerprints chain, so turning a model into a view rebuilds only that model.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gitops_data.project.checks import check_hash  # noqa: F401 - re-exported
from gitops_data.project.nodes import Node, Project
from gitops_data.sql import parse_query

# Bump when the meaning of a build changes (e.g. how types are cast), to force rebuilds.
FINGERPRINT_VERSION = 1


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _body(node: Node) -> Any:
    body: Any
    if node.kind == "sql":
        body = parse_query(node.sql or "").canonical
    elif node.kind == "python":
        body = [node.python_source, node.python_function]
    elif node.kind in ("seed", "source"):
        body = [node.content_digest, node.data_format]
    elif node.kind == "snapshot":
        assert node.snapshot is not None  # every snapshot node carries its spec
        body = node.snapshot.model_dump(
            include={"unique_key", "strategy", "updated_at", "check_cols", "invalidate_hard_deletes"}
        )
    else:
        body = node.table
    if node.incremental is not None:
        body = [body, node.incremental.model_dump(include={"column", "lookback", "unique_key"})]
    if node.pre_hooks or node.post_hooks:  # they run in the build, so they shape its data
        body = [body, list(node.pre_hooks), list(node.post_hooks)]
    return body


def data_fingerprint(node: Node, upstream: dict[str, str]) -> str:
    """What determines a node's data, given the data fingerprints of its upstreams."""
    return _digest(
        {
            "v": FINGERPRINT_VERSION,
            "kind": node.kind,
            "body": _body(node),
            "types": node.declared_types,
            # A segmented build accumulates history: new upstream data appends a segment instead of
            # starting a new history, so only the upstreams' names count (see plan.py).
            "upstream": sorted(node.deps) if node.segmented else {dep: upstream[dep] for dep in node.deps},
        }
    )


def node_fingerprint(node: Node, upstream: dict[str, str]) -> str:
    """Fingerprint of one node's build, given the data fingerprints of its upstreams."""
    data = data_fingerprint(node, upstream)
    return data if node.materialized == "table" else _digest({"data": data, "as": node.materialized})


def local_fingerprint(node: Node) -> str:
    """The node's own definition, without its upstreams': equal local fingerprints and equal input
    data mean equal data."""
    return _digest(
        {
            "v": FINGERPRINT_VERSION,
            "kind": node.kind,
            "body": _body(node),
            "types": node.declared_types,
            "upstream": sorted(node.deps),
            "as": node.materialized,
        }
    )


def data_fingerprints(project: Project) -> dict[str, str]:
    """Data fingerprint of every node (nodes are already in dependency order)."""
    out: dict[str, str] = {}
    for name, node in project.nodes.items():
        out[name] = data_fingerprint(node, out)
    return out


def project_fingerprints(project: Project) -> dict[str, str]:
    """Build fingerprint of every node."""
    data = data_fingerprints(project)
    return {name: node_fingerprint(node, data) for name, node in project.nodes.items()}
