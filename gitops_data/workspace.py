"""The I/O facade shared by the CLI and Dagster: a data repo + a warehouse file.

It loads projects at commits (from Git objects, cached per process), maps refs to environments,
and computes plans against the catalog. Dagster code and the CLI both go through it, so a build
started from either reads exactly the same things.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from gitops_data import gitrepo
from gitops_data.errors import GitopsError
from gitops_data.fingerprint import project_fingerprints
from gitops_data.naming import environment_schema
from gitops_data.plan import BuildRecord, Plan, make_plan
from gitops_data.spec.loader import load_project
from gitops_data.spec.project import Project
from gitops_data.spec.schema import Settings
from gitops_data.spec.tree import GitTree
from gitops_data.warehouse.catalog import RefStatus, catalog_state, find_build, ref_statuses, set_ref_status
from gitops_data.warehouse.connection import open_warehouse

STATE_DIR = ".gitops_data"


def default_warehouse() -> str:
    return os.environ.get("GITOPS_DATA_WAREHOUSE") or str(Path(STATE_DIR) / "warehouse.duckdb")


def default_repo() -> str:
    return os.environ.get("GITOPS_DATA_REPO") or "."


@functools.lru_cache(maxsize=64)
def _project_at(repo: str, sha: str) -> Project:
    return load_project(GitTree(repo, sha))


@functools.lru_cache(maxsize=64)
def _fingerprints_at(repo: str, sha: str) -> dict[str, str]:
    return project_fingerprints(_project_at(repo, sha))


@dataclass(frozen=True)
class Environment:
    """A Git ref mapped to an external schema."""

    name: str  # the ref (branch name)
    schema: str

    @property
    def key_prefix(self) -> str:
        return self.schema


@dataclass(frozen=True)
class Workspace:
    repo: str
    warehouse: str

    @classmethod
    def from_env(cls, repo: str | None = None, warehouse: str | None = None) -> Workspace:
        return cls(str(Path(repo or default_repo()).resolve()), str(Path(warehouse or default_warehouse()).resolve()))

    def resolve(self, ref: str) -> str:
        return gitrepo.resolve(self.repo, ref)

    def project(self, sha: str) -> Project:
        return _project_at(self.repo, sha)

    def fingerprints(self, sha: str) -> dict[str, str]:
        return _fingerprints_at(self.repo, sha)

    def environment(self, ref: str, s: Settings) -> Environment:
        """The environment a ref publishes to: production, or `<schema>__<branch>`."""
        if ref != s.production_ref and not gitrepo.is_branch(self.repo, ref):
            raise GitopsError(
                f"{ref!r} is not a branch; only branches have environments. Build a commit with "
                f"`--env {s.production_ref}` or push it to a branch"
            )
        return Environment(ref, environment_schema(s.external_schema, ref, s.production_ref))

    def plan(self, sha: str, env: Environment, rebuild: frozenset[str] = frozenset(),
             prefer_run: str | None = None) -> Plan:
        project = self.project(sha)
        fps = self.fingerprints(sha)
        s = project.settings
        with open_warehouse(self.warehouse) as con:
            state = catalog_state(con, s.meta_schema, s.internal_schema, env.name, {n: fps[n] for n, nd in project.nodes.items() if nd.built}, prefer_run)
        return make_plan(project, fps, state, env.name, env.schema, sha, rebuild)

    def record_status(self, meta: str, env: Environment, sha: str, status: str, reason: str = "") -> None:
        """Why `env` does (not yet) serve `sha`: building, blocked, invalid, failed, superseded."""
        with open_warehouse(self.warehouse) as con:
            set_ref_status(con, meta, env.name, env.schema, sha, status, reason)

    def ref_status(self, meta: str, env: str) -> RefStatus | None:
        with open_warehouse(self.warehouse) as con:
            return ref_statuses(con, meta).get(env)

    def find_build(self, con, sha: str, model: str, env: str, run_id: str | None) -> BuildRecord | None:
        s = self.project(sha).settings
        return find_build(con, s.meta_schema, s.internal_schema, model, self.fingerprints(sha)[model], env, run_id)
