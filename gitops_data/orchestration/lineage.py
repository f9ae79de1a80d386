"""Column lineage as Dagster metadata: `dagster/column_lineage` (which Dagster+ draws and catalogs
read) and, because the open-source UI does not draw it, a table of it the asset page shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from gitops_data.deployment.core import Environment
from gitops_data.orchestration.assets import asset_key
from gitops_data.project.columns import Lineage

if TYPE_CHECKING:
    from dagster._core.definitions.metadata import RawMetadataValue

LINEAGE_TEXT = "column lineage"


def lineage_markdown(lineage: Lineage) -> str:
    """Per column, the upstream model.columns it is computed from (— where it reads none)."""
    rows = ["| column | computed from |", "| --- | --- |"]
    for column, sources in lineage:
        rows.append(f"| {column} | {', '.join(f'{m}.{c}' for m, c in sources) or '—'} |")
    return "\n".join(rows)


def column_schema(columns: dict[str, str], lineage: Lineage) -> dg.TableSchema:
    """A build's columns and types; each column's description says what it is computed from (the
    Columns table of the OSS asset page shows it)."""
    sources = {c.lower(): s for c, s in lineage}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=c, type=t, description=_from(sources.get(c.lower())))
            for c, t in columns.items()
        ]
    )


def _from(sources: tuple | None) -> str | None:
    if not sources:
        return None
    return "from " + ", ".join(f"{m}.{c}" for m, c in sources)


def lineage_metadata(env: Environment, lineage: Lineage) -> dict[str, RawMetadataValue]:
    """The metadata entries of a build's column lineage, upstream keys in `env`'s group."""
    deps = {
        column: [dg.TableColumnDep(asset_key=asset_key(env, m), column_name=c) for m, c in sources]
        for column, sources in lineage
        if sources
    }
    out: dict[str, RawMetadataValue] = {LINEAGE_TEXT: dg.MetadataValue.md(lineage_markdown(lineage))}
    if deps:
        out["dagster/column_lineage"] = dg.TableColumnLineage(deps_by_column=deps)
    return out
