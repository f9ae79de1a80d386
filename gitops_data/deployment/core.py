"""A deployment: a data repo + a warehouse, with the production settings resolved once.

It loads projects at commits (from Git objects, cached per process), maps refs to environments,
and computes plans against the catalog. Dagster code and the CLI both go through it, so a build
started from either reads exactly the same things. Make one per operation (a CLI command, a sensor
tick): its settings are those of the production head when it was first asked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gitops_data import gitrepo
from gitops_data.engines import Capabilities, EngineKind, engine_kind, open_warehouse
from gitops_data.engines.locations import redact
from gitops_data.errors import GitopsError
from gitops_data.fingerprint import project_fingerprints
from gitops_data.naming import environment_schema
from gitops_data.plan import Plan, Status, make_plan
from gitops_data.project.loader import load_project, read_settings
from gitops_data.project.nodes import Project
from gitops_data.project.schema import SETTINGS_FILE, Settings
from gitops_data.project.tree import GitTree
from gitops_data.warehouse.catalog import Catalog

STATE_DIR = ".gitops_data"
PROJECT_FILE = "dbt_project.yml"  # a dbt project at the root is a data repo too


def default_warehouse() -> str:
    return os.environ.get("GITOPS_DATA_WAREHOUSE") or str(Path(STATE_DIR) / "warehouse.duckdb")


def default_repo() -> str:
    return os.environ.get("GITOPS_DATA_REPO") or "."


@functools.lru_cache(maxsize=64)
def _project_at(repo: str, sha: str, dialect: str) -> Project:
    return load_project(GitTree(repo, sha), dialect)


@functools.lru_cache(maxsize=64)
def _settings_at(repo: str, sha: str) -> Settings:
    """The settings of commit `sha` (a commit's files never change: a sensor tick over unchanged
    heads reads no tree)."""
    tree = GitTree(repo, sha)
    if not tree.exists(SETTINGS_FILE) and not tree.exists(PROJECT_FILE):  # a dbt project needs no settings
        raise GitopsError(
            f"{repo} is not a gitops-data repository (neither {SETTINGS_FILE} nor {PROJECT_FILE} "
            f"at {sha[:10]}); pass --repo or set GITOPS_DATA_REPO"
        )
    return read_settings(tree)


@functools.lru_cache(maxsize=64)
def _fingerprints_at(repo: str, sha: str, dialect: str) -> dict[str, str]:
    return project_fingerprints(_project_at(repo, sha, dialect))


@dataclass(frozen=True)
class Environment:
    """A Git ref mapped to an external schema."""

    name: str  # the ref (branch name)
    schema: str

    @property
    def key_prefix(self) -> str:
        return self.schema


@dataclass(frozen=True)
class Deployment:
    repo: str
    warehouse: str

    @classmethod
    def from_env(
        cls, repo: str | None = None, warehouse: str | None = None, require_data_repo: bool = True
    ) -> Deployment:
        """The repo and warehouse given, else from GITOPS_DATA_REPO / GITOPS_DATA_WAREHOUSE; the repo
        must be a data repo (NotADataRepo otherwise) unless `require_data_repo` is False."""
        location = warehouse or default_warehouse()
        if engine_kind(location).local_file:
            location = str(Path(location).resolve())
        path = str(Path(repo or default_repo()).resolve())
        if require_data_repo:
            gitrepo.ensure_data_repo(path)
        return cls(path, location)

    @property
    def warehouse_label(self) -> str:
        """The warehouse, fit for output, run tags and metadata (a URL's password masked)."""
        return redact(self.warehouse)

    @property
    def state_dir(self) -> str:
        """Where local state (alert log files) goes: beside a DuckDB file, else .gitops_data/."""
        if self.engine_kind.local_file:
            return os.path.dirname(self.warehouse)
        return str(Path(STATE_DIR).resolve())

    @property
    def engine_kind(self) -> EngineKind:
        """The warehouse's engine (from the registry, by the location's URL scheme)."""
        return engine_kind(self.warehouse)

    @property
    def capabilities(self) -> Capabilities:
        """What the warehouse's engine can do."""
        return self.engine_kind.capabilities

    @property
    def dialect(self) -> str:
        """The SQL dialect of the warehouse's engine."""
        return self.capabilities.dialect

    def resolve(self, ref: str) -> str:
        return gitrepo.resolve(self.repo, ref)

    def project(self, sha: str) -> Project:
        return _project_at(self.repo, sha, self.dialect)

    def fingerprints(self, sha: str) -> dict[str, str]:
        return _fingerprints_at(self.repo, sha, self.dialect)

    def environment(self, ref: str, s: Settings | None = None) -> Environment:
        """The environment a ref publishes to: production, or `<schema>__<branch>` (`s`: the
        settings of the commit being published, default the deployment's)."""
        s = s or self.settings
        if ref != s.production_ref and not gitrepo.is_branch(self.repo, ref):
            raise GitopsError(
                f"{ref!r} is not a branch; only branches have environments. Build a commit with "
                f"`--env {s.production_ref}` or push it to a branch"
            )
        return Environment(ref, environment_schema(s.external_schema, ref, s.production_ref))

    def fresh(self) -> Deployment:
        """The same repo and warehouse with settings read anew (a long-lived caller: a sensor tick)."""
        return Deployment(self.repo, self.warehouse)

    @cached_property
    def settings(self) -> Settings:
        """The production head's settings, read once for this deployment."""
        return self.production_settings()

    @contextlib.contextmanager
    def catalog(self) -> Iterator[Catalog]:
        """The catalog (the settings' meta schema) over a short-lived warehouse connection."""
        with open_warehouse(self.warehouse) as engine:
            yield Catalog(engine, self.settings.meta_schema)

    def plan(
        self, sha: str, env: Environment, rebuild: frozenset[str] = frozenset(), full: bool = False
    ) -> Plan:
        """The plan for `env` to serve `sha`; `full` rebuilds what an additive change would let keep
        its data."""
        project = self.project(sha)
        fps = self.fingerprints(sha)
        s = project.settings
        built = {n: fps[n] for n, nd in project.nodes.items() if nd.built}
        with self.catalog() as cat:
            state = cat.state(s.internal_schema, env.name, built)
            base_commit = state.published_commit
            if base_commit is None:  # a new environment keeps what production serves where it can
                prod = s.production_ref
                served = cat.environments().get(prod)
                base_commit = served.commit if served else None
                baseline = cat.published_builds(prod).get(prod, {})
            else:
                baseline = state.published
        previous = None
        if base_commit is not None and not full:
            try:
                previous = self.project(base_commit)
            except GitopsError:  # the served commit is gone from the repo, or no longer loads
                previous = None
        state = dataclasses.replace(state, baseline=baseline)
        return make_plan(
            project,
            fps,
            state,
            env.name,
            env.schema,
            sha,
            rebuild,
            dialect=self.dialect,
            previous=previous,
            full=full,
        )

    def record_status(self, env: Environment, sha: str, status: Status, reason: str = "") -> None:
        """Why `env` does (not yet) serve `sha`: building, blocked, invalid, failed, superseded."""
        with self.catalog() as cat:
            cat.set_ref_status(env.name, env.schema, sha, status, reason)

    def production_settings(self, production_ref: str | None = None) -> Settings:
        """Settings from the production ref's head (defaults where unreadable)."""
        try:
            sha = self.resolve(production_ref or "main")
        except GitopsError:
            sha = self.resolve("HEAD")
        settings = _settings_at(self.repo, sha)
        if production_ref is None and settings.production_ref != "main":
            return self.production_settings(settings.production_ref)
        return settings

    def tracked_heads(self) -> dict[str, str]:
        """ref -> head SHA for the production ref and every branch matching the settings' `branches`."""
        s = self.settings
        heads = gitrepo.branch_heads(self.repo, s.branches)
        heads.update(gitrepo.branch_heads(self.repo, s.production_ref))
        return heads
