"""dbt_project.yml: the project's (and each installed package's) paths, vars, dispatch order and the
config tree (`models:`, `seeds:`, `snapshots:`, `data_tests:`), and how configs merge."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gitops_data.project.tree import FileTree, UnsafePath, normalize
from gitops_data.project.yaml_lines import LineDict, YamlSyntaxError, parse_yaml

PROJECT_FILE = "dbt_project.yml"
# Root files of a dbt project that are dbt's, not gitops-data YAML.
ROOT_FILES = (
    PROJECT_FILE,
    "packages.yml",
    "dependencies.yml",
    "package-lock.yml",
    "profiles.yml",
    "selectors.yml",
)

# Config names that may be written without `+` in dbt_project.yml (anything else is a folder).
CONFIG_KEYS = {
    "enabled",
    "materialized",
    "tags",
    "meta",
    "schema",
    "database",
    "alias",
    "docs",
    "persist_docs",
    "pre-hook",
    "post-hook",
    "pre_hook",
    "post_hook",
    "full_refresh",
    "unique_key",
    "incremental_strategy",
    "incremental_column",
    "incremental_lookback",
    "on_schema_change",
    "column_types",
    "quote_columns",
    "delimiter",
    "strategy",
    "updated_at",
    "check_cols",
    "target_schema",
    "target_database",
    "invalidate_hard_deletes",
    "hard_deletes",
    "snapshot_meta_column_names",
    "dbt_valid_to_current",
    "severity",
    "where",
    "limit",
    "store_failures",
    "store_failures_as",
    "warn_if",
    "error_if",
    "fail_calc",
    "contract",
    "grants",
    "group",
    "access",
    "sql_header",
    "quoting",
    "event_time",
    "batch_size",
    "begin",
    "lookback",
}
_ADDITIVE = {"tags", "pre-hook", "post-hook"}
_MERGED = {"meta", "column_types", "docs", "persist_docs", "grants", "snapshot_meta_column_names", "contract"}


class DbtProjectError(ValueError):
    """dbt_project.yml (or a package's) cannot be read; `line` is where, when known."""

    def __init__(self, file: str, message: str, line: int | None = None):
        super().__init__(message)
        self.file = file
        self.line = line


@dataclass(frozen=True)
class DbtPackage:
    """One dbt project: the root one, or a package installed under dbt_packages/."""

    name: str
    root: str  # repo path of its folder ("" for the repository root)
    file: str  # repo path of its dbt_project.yml
    model_paths: tuple[str, ...] = ("models",)
    seed_paths: tuple[str, ...] = ("seeds",)
    snapshot_paths: tuple[str, ...] = ("snapshots",)
    test_paths: tuple[str, ...] = ("tests",)
    macro_paths: tuple[str, ...] = ("macros",)
    analysis_paths: tuple[str, ...] = ("analyses",)
    packages_path: str = "dbt_packages"
    target_path: str = "target"
    log_path: str = "logs"
    profile: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)  # models / seeds / snapshots / data_tests trees
    dispatch: dict[str, tuple[str, ...]] = field(default_factory=dict)  # namespace -> search order
    on_run_start: tuple[str, ...] = ()  # templates, rendered per build (see loader)
    on_run_end: tuple[str, ...] = ()
    raw: LineDict | None = None

    def path(self, rel: str) -> str:
        """A repo path for `rel`, relative to this project's folder."""
        return normalize(posixpath.join(self.root, rel)) if self.root else normalize(rel)

    def folders(self, kind: str) -> tuple[str, ...]:
        """Repo paths of the project's `kind` folders (model, seed, snapshot, test, macro, analysis)."""
        return tuple(self.path(p) for p in getattr(self, f"{kind}_paths"))

    def owned_globs(self) -> list[str]:
        """Globs of the repository files that belong to this dbt project (not gitops-data YAML)."""
        if self.root:
            return [f"{self.root}/*"]
        folders = {
            p
            for kind in ("model", "seed", "snapshot", "test", "macro", "analysis")
            for p in getattr(self, f"{kind}_paths")
        }
        folders |= {self.packages_path, self.target_path, self.log_path}
        return [f"{normalize(f)}/*" for f in sorted(folders)] + list(ROOT_FILES)


def _paths(data: LineDict, key: str, default: tuple[str, ...], file: str) -> tuple[str, ...]:
    value = data.get(key, list(default))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DbtProjectError(file, f"{key} must be a list of folders", data.key_lines.get(key))
    try:
        return tuple(normalize(v) for v in value)
    except UnsafePath as exc:
        raise DbtProjectError(file, f"{key}: {exc}", data.key_lines.get(key)) from None


def _dispatch(data: LineDict, file: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    value = data.get("dispatch") or []
    if not isinstance(value, list):
        raise DbtProjectError(file, "dispatch must be a list", data.key_lines.get("dispatch"))
    for entry in value:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("macro_namespace"), str)
            or not isinstance(entry.get("search_order"), list)
        ):
            raise DbtProjectError(
                file,
                "each dispatch entry needs macro_namespace and search_order (a list of packages)",
                getattr(entry, "line", None),
            )
        out[entry["macro_namespace"]] = tuple(str(p) for p in entry["search_order"])
    return out


def read_package(tree: FileTree, root: str) -> DbtPackage:
    """The dbt project whose dbt_project.yml is in folder `root` (a repo path, "" for the root)."""
    file = posixpath.join(root, PROJECT_FILE) if root else PROJECT_FILE
    try:
        data = parse_yaml(tree.read(file))
    except YamlSyntaxError as exc:
        raise DbtProjectError(file, str(exc), exc.line) from None
    except (FileNotFoundError, UnsafePath, OSError) as exc:
        raise DbtProjectError(file, f"cannot read {file}: {exc}") from None
    if not isinstance(data, LineDict):
        raise DbtProjectError(file, "dbt_project.yml must be a mapping")
    name = data.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise DbtProjectError(
            file, "`name` must be the project's name (an identifier)", data.key_lines.get("name")
        )
    hooks = {}
    for key in ("on-run-start", "on-run-end"):
        value = data.get(key) or []
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DbtProjectError(
                file, f"{key} must be a statement or a list of them", data.key_lines.get(key)
            )
        hooks[key] = tuple(value)
    vars_ = data.get("vars") or {}
    if not isinstance(vars_, dict):
        raise DbtProjectError(file, "vars must be a mapping", data.key_lines.get("vars"))
    configs = {}
    for key in ("models", "seeds", "snapshots", "data_tests", "tests", "sources"):
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            raise DbtProjectError(file, f"{key} must be a mapping of configs", data.key_lines.get(key))
        if value:
            configs["data_tests" if key == "tests" else key] = value
    install = data.get("packages-install-path", "dbt_packages")
    try:
        install = normalize(install) if isinstance(install, str) else "dbt_packages"
    except UnsafePath as exc:
        raise DbtProjectError(
            file, f"packages-install-path: {exc}", data.key_lines.get("packages-install-path")
        ) from None
    return DbtPackage(
        name=name,
        root=root,
        file=file,
        model_paths=_paths(data, "model-paths", ("models",), file),
        seed_paths=_paths(data, "seed-paths", ("seeds",), file),
        snapshot_paths=_paths(data, "snapshot-paths", ("snapshots",), file),
        test_paths=_paths(data, "test-paths", ("tests",), file),
        macro_paths=_paths(data, "macro-paths", ("macros",), file),
        analysis_paths=_paths(data, "analysis-paths", ("analyses",), file),
        packages_path=install,
        target_path=str(data.get("target-path", "target")),
        log_path=str(data.get("log-path", "logs")),
        profile=data.get("profile") if isinstance(data.get("profile"), str) else None,
        vars=dict(vars_),
        configs=configs,
        dispatch=_dispatch(data, file),
        on_run_start=hooks["on-run-start"],
        on_run_end=hooks["on-run-end"],
        raw=data,
    )


def listed_packages(tree: FileTree, project: DbtPackage) -> set[str]:
    """Names of the packages packages.yml / dependencies.yml ask for (`dbt_utils` of
    `dbt-labs/dbt_utils`), to say which one is missing when a namespace is undefined."""
    names = set()
    for file in ("packages.yml", "dependencies.yml"):
        path = project.path(file)
        if not tree.exists(path):
            continue
        try:
            data = parse_yaml(tree.read(path))
        except YamlSyntaxError:
            continue
        for entry in (data or {}).get("packages") or [] if isinstance(data, dict) else []:
            if isinstance(entry, dict):
                ref = entry.get("package") or entry.get("git") or entry.get("local") or ""
                name = posixpath.basename(str(ref).rstrip("/")).removesuffix(".git").replace("-", "_")
                if name:
                    names.add(name)
    return names


def installed_packages(tree: FileTree, project: DbtPackage) -> list[str]:
    """Folders of the packages as `dbt deps` leaves them: <packages-install-path>/<name>/dbt_project.yml."""
    base = project.path(project.packages_path)
    return sorted(
        {
            f[: -len(PROJECT_FILE) - 1]
            for f in tree.files()
            if f.startswith(base + "/")
            and f.endswith("/" + PROJECT_FILE)
            and f.count("/") == base.count("/") + 2
        }
    )


def key_name(key: str) -> str:
    """A config key as dbt normalizes it: no `+`, hooks with a dash."""
    key = key[1:] if key.startswith("+") else key
    return {"pre_hook": "pre-hook", "post_hook": "post-hook"}.get(key, key)


def _listed(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [] if value is None else [value]


def merge_config(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base` as dbt merges configs: tags and hooks add up, meta-like mappings merge,
    everything else is replaced."""
    out = dict(base)
    for raw_key, value in extra.items():
        key = key_name(raw_key)
        if key in _ADDITIVE:
            out[key] = [
                *_listed(out.get(key)),
                *[v for v in _listed(value) if v not in _listed(out.get(key))],
            ]
        elif key in _MERGED and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _own_configs(level: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in level.items()
        if isinstance(k, str)
        and (k.startswith("+") or (k in CONFIG_KEYS and not isinstance(v, dict)) or k in _MERGED)
    }


def tree_config(tree: Any, project: str, parts: tuple[str, ...]) -> dict[str, Any]:
    """The configs a resource gets from a dbt_project.yml tree (`models:` ...): the top level's,
    then the project's, then each folder's down to the resource's own name (deeper wins)."""
    out: dict[str, Any] = {}
    if not isinstance(tree, dict):
        return out
    out = merge_config(out, _own_configs(tree))
    level: Any = tree.get(project)
    for part in parts:
        if not isinstance(level, dict):
            return out
        out = merge_config(out, _own_configs(level))
        level = level.get(part)
    if isinstance(level, dict):
        out = merge_config(out, _own_configs(level))
    return out


def rendered(value: Any, render: Callable[[str], Any]) -> Any:
    """`value` with each string that holds Jinja rendered (dbt renders configs in YAML)."""
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return render(value)
    if isinstance(value, dict):
        return {k: rendered(v, render) for k, v in value.items()}
    if isinstance(value, list):
        return [rendered(v, render) for v in value]
    return value
