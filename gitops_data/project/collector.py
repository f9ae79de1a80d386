"""Collecting every issue of a project load, and the file reads both front-ends (YAML, dbt) share."""

from __future__ import annotations

import posixpath
from typing import Any

from pydantic import BaseModel, ValidationError

from gitops_data.errors import Issue
from gitops_data.project.tree import FileTree, UnsafePath, normalize
from gitops_data.project.yaml_lines import LineDict, YamlSyntaxError, line_of, parse_yaml

MAX_YAML_BYTES = 5_000_000
_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".json": "json",
    ".ndjson": "json",
    ".jsonl": "json",
}


def pydantic_issues(
    exc: ValidationError, data: Any, file: str, model: str | None, prefix: tuple = ()
) -> list[Issue]:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after",))
        field = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
            field = ".".join(str(p) for p in loc[:-1])
        elif err["type"] == "missing":
            msg = f"missing required key {loc[-1]!r}"
            field = ".".join(str(p) for p in loc[:-1])
        where = f"{field}: " if field else ""
        out.append(Issue(file, where + msg, line_of(data, prefix + loc), model))
    return out


class Collector:
    """The issues found so far, and reads of the project's files that report an issue instead of raising."""

    def __init__(self, tree: FileTree):
        self.tree = tree
        self.issues: list[Issue] = []

    def add(self, file: str, message: str, line: int | None = None, model: str | None = None) -> None:
        self.issues.append(Issue(file, message, line, model))

    def parse(self, cls: type[BaseModel], data: Any, file: str, model: str | None = None):
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            self.issues.extend(pydantic_issues(exc, data, file, model))
            return None

    def read_text(
        self, path: str, file: str, line: int | None, model: str | None, what: str
    ) -> tuple[str, str] | None:
        try:
            norm = normalize(path)
            return norm, self.tree.read(norm).decode("utf-8")
        except UnsafePath as exc:
            self.add(file, f"{what}: {exc}", line, model)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            self.add(file, f"{what}: file {path!r} does not exist", line, model)
        except OSError as exc:
            self.add(file, f"{what}: cannot read {path!r}: {exc.strerror or exc}", line, model)
        except UnicodeDecodeError:
            self.add(file, f"{what}: file {path!r} is not UTF-8 text", line, model)
        return None


def read_yaml_mapping(c: Collector, path: str, not_a_mapping: str) -> LineDict | None:
    """The YAML file `path` as a mapping, or None (empty, or unreadable, too large, invalid or not a
    mapping: then an issue says why, with `not_a_mapping` for the last)."""
    try:
        raw = c.tree.read(path)
    except (UnsafePath, OSError) as exc:
        c.add(path, f"cannot read: {exc}")
        return None
    if len(raw) > MAX_YAML_BYTES:
        c.add(path, f"file is {len(raw)} bytes; YAML files are limited to {MAX_YAML_BYTES} bytes")
        return None
    try:
        data = parse_yaml(raw)
    except YamlSyntaxError as exc:
        c.add(path, str(exc), exc.line)
        return None
    if data is not None and not isinstance(data, LineDict):
        c.add(path, not_a_mapping, getattr(data, "line", 1))
        return None
    return data


def data_file(
    c: Collector, path: str, file: str, line: int | None, name: str, fmt: str | None
) -> dict | None:
    try:
        norm = normalize(path)
    except UnsafePath as exc:
        c.add(file, f"path: {exc}", line, name)
        return None
    if not c.tree.exists(norm):
        c.add(
            file, f"path: file {path!r} does not exist in the repository (or is a symbolic link)", line, name
        )
        return None
    fmt = fmt or _FORMATS.get(posixpath.splitext(norm)[1].lower())
    if fmt is None:
        c.add(file, f"path: cannot tell the format of {path!r}; set `format: csv|parquet|json`", line, name)
        return None
    return {"data_path": norm, "data_format": fmt, "content_digest": c.tree.digest(norm)}
