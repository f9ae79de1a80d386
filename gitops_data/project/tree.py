"""Read-only views of a project's files: a Git commit (the normal case) or a plain folder.

Everything a build reads from the data repo (YAML, SQL, Python, seeds, file sources) goes through a
FileTree, so a build of an old commit reads the old files, never the working tree.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gitops_data.errors import GitError

if TYPE_CHECKING:
    import git


class FileTree(Protocol):
    label: str

    @property
    def commit(self) -> str | None: ...  # read-only: a GitTree always has one

    def files(self) -> list[str]: ...
    def exists(self, path: str) -> bool: ...
    def read(self, path: str) -> bytes: ...
    def digest(self, path: str) -> str: ...


class UnsafePath(ValueError):
    """A path in the project leaves the repository (absolute, `..`, or a symlink)."""


def normalize(path: str) -> str:
    """Normalize a repo-relative path; refuse anything that could leave the repository."""
    if not isinstance(path, str) or not path.strip():
        raise UnsafePath("path must be a non-empty string")
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        raise UnsafePath(f"path {path!r} is absolute; paths are relative to the repository root")
    norm = posixpath.normpath(path.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        raise UnsafePath(f"path {path!r} points outside the repository")
    return norm


class _BlobContents:
    """Blob contents by object id, kept per process (least recently used out, at most MAX_BYTES):
    a blob's id is a digest of its content, so a commit that shares a file with one read before (the
    next commit of a branch, with one file changed) reads it from here, not through `git cat-file`."""

    MAX_BYTES = 64_000_000
    MAX_BLOB = 1_000_000  # larger blobs (data files) are read each time

    def __init__(self) -> None:
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def read(self, blob: git.Blob) -> bytes:
        key = blob.hexsha
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
                return found
        data = blob.data_stream.read()
        if len(data) <= self.MAX_BLOB:
            with self._lock:
                if key not in self._data:
                    self._data[key] = data
                    self._bytes += len(data)
                while self._bytes > self.MAX_BYTES:
                    self._bytes -= len(self._data.popitem(last=False)[1])
        return data


_BLOBS = _BlobContents()


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))


@dataclass
class GitTree:
    """The files of one commit, read from Git objects."""

    repo_path: str
    commit: str
    label: str = ""
    _blobs: dict[str, git.Blob] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        import git  # local import: pure callers never pay for gitpython

        try:
            repo = git.Repo(self.repo_path)
            tree = repo.commit(self.commit).tree
            for item in tree.traverse():
                if isinstance(item, git.Blob):
                    self._blobs[str(item.path)] = item
        except (git.exc.GitError, ValueError) as exc:
            raise GitError(f"cannot read commit {self.commit!r} of {self.repo_path}: {exc}") from exc
        finally:
            if "repo" in locals():
                repo.close()
        self.label = self.label or f"{self.commit[:10]}"

    def files(self) -> list[str]:
        return sorted(p for p in self._blobs if not _hidden(p))

    def _blob(self, path: str) -> git.Blob:
        norm = normalize(path)
        blob = self._blobs.get(norm)
        if blob is None:
            raise FileNotFoundError(f"{norm} does not exist at commit {self.commit[:10]}")
        if stat.S_ISLNK(blob.mode):
            raise UnsafePath(f"{norm} is a symbolic link; links are not followed")
        return blob

    def exists(self, path: str) -> bool:
        try:
            self._blob(path)
            return True
        except (FileNotFoundError, UnsafePath):
            return False

    def read(self, path: str) -> bytes:
        return _BLOBS.read(self._blob(path))

    def digest(self, path: str) -> str:
        return self._blob(path).hexsha


@dataclass
class DirTree:
    """The files of a folder (used by `validate` on a working copy)."""

    root: str
    commit: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        self.root = str(Path(self.root).resolve())
        self.label = self.label or self.root

    def files(self) -> list[str]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            for name in filenames:
                path = name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")
                if not _hidden(path):
                    out.append(path)
        return sorted(out)

    def _full(self, path: str) -> str:
        full = os.path.join(self.root, normalize(path))
        real = os.path.realpath(full)
        if real != self.root and not real.startswith(self.root + os.sep):
            raise UnsafePath(f"{path} resolves outside the repository (symbolic link?)")
        return full

    def exists(self, path: str) -> bool:
        try:
            return os.path.isfile(self._full(path))
        except UnsafePath:
            return False

    def read(self, path: str) -> bytes:
        full = self._full(path)
        if not os.path.isfile(full):
            raise FileNotFoundError(f"{path} is not a file")
        with open(full, "rb") as fh:
            return fh.read()

    def digest(self, path: str) -> str:
        return hashlib.sha1(self.read(path)).hexdigest()
