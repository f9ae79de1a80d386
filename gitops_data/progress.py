"""A tiny in-process progress hook: build and audit steps report, the CLI (if listening) prints."""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, str, str], None]  # (event, model, detail)
_listeners: list[Listener] = []


def listen(fn: Listener) -> Callable[[], None]:
    _listeners.append(fn)
    return lambda: _listeners.remove(fn)


def emit(event: str, model: str, detail: str = "") -> None:
    for fn in list(_listeners):
        fn(event, model, detail)
