"""Loaded projects kept per process, keyed by content: the digests (Git blob ids) of every file of
the tree, the target dialect and the environment variables (dbt's `env_var()` reads them). Two
commits with the same files (a revert, a merge that changes nothing, a branch at main's tree) load
once; a tree whose files differ in any byte loads anew. Invalid projects are kept too: their issues
are raised again, for the tree asked about."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

from gitops_data.errors import Issue, ProjectError
from gitops_data.project.nodes import Project
from gitops_data.project.tree import FileTree, UnsafePath, normalize

MAX_PROJECTS = 32


class _Watched:
    """A FileTree that notes whether a hidden path was asked about (`files()` lists none, so the
    content key does not cover it): such a load is not cached."""

    def __init__(self, tree: FileTree, listed: set[str]):
        self.tree, self.listed, self.outside = tree, listed, False
        self.label = tree.label

    @property
    def commit(self) -> str | None:
        return self.tree.commit

    def _note(self, path: str) -> None:
        try:
            norm = normalize(path)
        except UnsafePath:
            return  # refused whatever the content
        if norm not in self.listed and any(part.startswith(".") for part in norm.split("/")):
            self.outside = True  # a hidden path: not in files(), so not in the key

    def files(self) -> list[str]:
        return self.tree.files()

    def exists(self, path: str) -> bool:
        self._note(path)
        return self.tree.exists(path)

    def read(self, path: str) -> bytes:
        self._note(path)
        return self.tree.read(path)

    def digest(self, path: str) -> str:
        self._note(path)
        return self.tree.digest(path)


def content_key(tree: FileTree, target: str, files: list[str] | None = None) -> str | None:
    """A digest of everything a load reads, or None when the tree cannot say (a file that cannot be
    read: the load reports it, uncached)."""
    h = hashlib.sha256()
    h.update(f"target\0{target}\0".encode())
    for name, value in sorted(os.environ.items()):
        h.update(f"env\0{name}\0{value}\0".encode())
    try:
        for path in tree.files() if files is None else files:
            h.update(f"file\0{path}\0{tree.digest(path)}\0".encode())
    except (OSError, ValueError):
        return None
    return h.hexdigest()


class ProjectCache:
    """Projects (or the issues that made them invalid) by content key; least recently used out."""

    def __init__(self, limit: int = MAX_PROJECTS):
        self.limit = limit
        self._entries: OrderedDict[str, Project | tuple[Issue, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def load(self, tree: FileTree, target: str, load: Callable[[FileTree, str], Project]) -> Project:
        """`load(tree, target)`, or what it gave for a tree of the same content."""
        files = tree.files()
        key = content_key(tree, target, files)
        if key is None:
            return load(tree, target)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if isinstance(found, Project):
            return dataclasses.replace(found, commit=tree.commit)
        if found is not None:
            raise ProjectError(list(found), where=f"project at {tree.label}")
        watched = _Watched(tree, set(files))
        try:
            project = load(watched, target)
        except ProjectError as exc:
            if not watched.outside:
                self._store(key, tuple(exc.issues))
            raise
        if not watched.outside:
            self._store(key, project)
        return project

    def _store(self, key: str, value: Project | tuple[Issue, ...]) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


PROJECTS = ProjectCache()  # shared by every load in this process
