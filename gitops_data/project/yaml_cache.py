"""Parsed YAML documents kept per process, keyed by a digest of their bytes: a project loaded again
with one file changed parses only that file. Each caller gets its own copy (the loaders may change
what they are given), made much faster than parsing again; a document that did not parse raises
its error again."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MAX_DOCUMENTS = 4096
MAX_BYTES = 1_000_000  # larger documents are parsed each time (rare; not worth the memory)


def copy_document(value: Any) -> Any:
    """A deep copy of what a YAML loader builds: mappings and sequences (their subclasses and the
    attributes they carry: line numbers, a mapping of key lines), sets, tuples; scalars are
    immutable and shared."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, dict):
        out = kind()
        for k, v in value.items():
            out[k] = v if type(v) in _SCALARS else copy_document(v)
        _copy_attributes(value, out)
        return out
    if isinstance(value, list):
        out_list = kind([v if type(v) in _SCALARS else copy_document(v) for v in value])
        _copy_attributes(value, out_list)
        return out_list
    if isinstance(value, set):
        return set(value)
    if isinstance(value, tuple):
        return tuple(copy_document(v) for v in value)
    return value


_SCALARS = frozenset({str, int, float, bool, type(None), bytes})


def _copy_attributes(src: Any, dst: Any) -> None:
    attrs = getattr(src, "__dict__", None)
    if attrs:
        dst.__dict__.update({k: copy_document(v) for k, v in attrs.items()})


class YamlDocuments:
    """Parse results (or the exception a parse raised) by digest of the text; least recently used out."""

    def __init__(self, limit: int = MAX_DOCUMENTS):
        self.limit = limit
        self._docs: OrderedDict[str, tuple[bool, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def parse(self, text: bytes | str, parse: Callable[[bytes | str], Any]) -> Any:
        """`parse(text)`, or a copy of what it gave for the same text."""
        if len(text) > MAX_BYTES:
            return parse(text)
        raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        key = ("s:" if isinstance(text, str) else "b:") + hashlib.sha256(raw).hexdigest()
        with self._lock:
            found = self._docs.get(key)
            if found is not None:
                self._docs.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if found is None:
            try:
                found = (True, parse(text))
            except ValueError as exc:  # YamlSyntaxError: the same text fails the same way
                found = (False, exc)
            with self._lock:
                self._docs[key] = found
                while len(self._docs) > self.limit:
                    self._docs.popitem(last=False)
        ok, value = found
        if not ok:
            raise type(value)(*_exception_args(value))
        return copy_document(value)

    def clear(self) -> None:
        with self._lock:
            self._docs.clear()
            self.hits = self.misses = 0


def _exception_args(exc: BaseException) -> tuple:
    line = getattr(exc, "line", None)
    return (str(exc), line) if hasattr(exc, "line") else exc.args


DOCUMENTS = YamlDocuments()  # shared by every load in this process
