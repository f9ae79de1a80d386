"""Connections to the DuckDB warehouse file, serialized across processes.

DuckDB lets one process at a time open a file for writing. The Dagster webserver, the daemon's
sensors, run workers and the CLI are separate processes, so every connection we open first takes an
exclusive `flock` on `<warehouse>.lock` (waiting with back-off), and connections are kept short.
A connect that still fails on DuckDB's own file lock (an outside reader holding the file) is
retried with jittered back-off before giving up with WarehouseBusy.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from gitops_data.errors import GitopsError, WarehouseBusy


def lock_timeout() -> float:
    """Seconds to wait for the warehouse (GITOPS_DATA_LOCK_TIMEOUT, default 600), read at each call."""
    return float(os.environ.get("GITOPS_DATA_LOCK_TIMEOUT", "600"))


class _Retry(Exception):
    """Raised by an attempt that should be retried after a back-off."""


def _with_backoff(attempt, timeout: float, first: float, cap: float, busy: str):
    """Call `attempt()` until it stops raising _Retry; jittered exponential back-off; WarehouseBusy
    with the message `busy` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = first
    while True:
        try:
            return attempt()
        except _Retry as why:
            if time.monotonic() >= deadline:
                raise WarehouseBusy(busy.format(why=why.args[0] if why.args else "")) from None
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, cap)


@contextlib.contextmanager
def warehouse_lock(path: str | Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the warehouse's cross-process lock (re-entrant within one process is NOT supported)."""
    timeout = lock_timeout() if timeout is None else timeout
    lock_path = f"{path}.lock"
    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)

    def take() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _Retry() from None

    try:
        _with_backoff(take, timeout, 0.005, 0.5,
                      f"warehouse {path} stayed locked for {timeout:.0f}s by another gitops-data process; "
                      "try again when the running build or publish has finished")
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _connect(path: str, timeout: float) -> duckdb.DuckDBPyConnection:
    def attempt() -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(path)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise GitopsError(f"cannot open warehouse {path}: {exc}") from None
            raise _Retry(str(exc)) from None

    return _with_backoff(attempt, timeout, 0.02, 1.0,
                         f"warehouse {path} is held open by another program ({{why}}); consumers should use "
                         "short-lived read-only connections (see README, 'Concurrency and consumers')")


_step_connection: contextvars.ContextVar[tuple[str, duckdb.DuckDBPyConnection] | None] = contextvars.ContextVar(
    "gitops_step_connection", default=None
)


@contextlib.contextmanager
def open_warehouse(path: str | Path, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-write connection, under the cross-process lock (or the connection of
    the enclosing `step_connection` for the same file)."""
    path = str(path)
    timeout = lock_timeout() if timeout is None else timeout
    shared = _step_connection.get()
    if shared is not None and shared[0] == path:
        yield shared[1]
        return
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with warehouse_lock(path, timeout):
        con = _connect(path, timeout)
        try:
            yield con
        finally:
            con.close()


@contextlib.contextmanager
def step_connection(path: str | Path, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection (and one hold of the lock) for everything inside: a Dagster step resolves its
    inputs, writes its build and audits it without reconnecting (a connect costs tens of ms)."""
    with open_warehouse(path, timeout) as con:
        token = _step_connection.set((str(path), con))
        try:
            yield con
        finally:
            _step_connection.reset(token)


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK on any exception (then re-raised)."""
    con.execute("begin")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
