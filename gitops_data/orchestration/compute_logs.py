"""Dagster's local compute log manager, showing a step's stdout and stderr on the console with a
thread instead of processes.

Dagster's own `LocalComputeLogManager` points the process's stdout and stderr at files, as this one
does, and starts for each of them a `tail -F` (which copies the file back to the console, polling
once a second) and a Python process that watches for orphans: four processes a step, about 0.1 s of
a sync on 2 cores, and the console can miss the lines of a step's last second (dagster#23336).
Here a thread of this process follows each file to the console (every 50 ms, and to its end when
the step ends). The step writes to the file itself, as with Dagster's: a crash loses nothing of
it, a write never waits for the console, and a process the step leaves running keeps writing to
the file. The files, their names and everything the UI reads are Dagster's. `dagster.yaml` selects
it:

    compute_logs:
      module: gitops_data.orchestration.compute_logs
      class: LocalComputeLogManager
"""

from __future__ import annotations

import os
import select
import sys
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import IO

from dagster import Field, Float, StringSource
from dagster._core.execution.compute_logs import mirror_stream_to_file
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION
from dagster._core.storage.local_compute_log_manager import (
    LocalComputeLogManager as DagsterLocalComputeLogManager,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils import ensure_file, touch_file

from gitops_data.orchestration.dagster_home import in_dagster_home

# How often the console copy looks for more of a step's output, and how long the end of a step waits
# for the copy to catch up (only a console nobody reads makes it wait that long).
POLL_SECONDS = 0.05
DRAIN_SECONDS = 5.0


class LocalComputeLogManager(DagsterLocalComputeLogManager):
    """Compute logs in `base_dir` (default `$DAGSTER_HOME/storage`, where Dagster keeps them)."""

    def __init__(
        self,
        base_dir: str | None = None,
        polling_timeout: float | None = None,
        inst_data: ConfigurableClassData | None = None,
    ):
        base_dir = base_dir or in_dagster_home("storage", what="compute log manager")
        super().__init__(base_dir, polling_timeout, inst_data)

    @classmethod
    def config_type(cls):
        return {
            "base_dir": Field(StringSource, is_required=False),
            "polling_timeout": Field(Float, is_required=False),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Generator[CapturedLogContext, None, None]:
        with ExitStack() as stack:
            for stream, io_type in ((sys.stdout, ComputeIOType.STDOUT), (sys.stderr, ComputeIOType.STDERR)):
                path = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[io_type])
                stack.enter_context(tee_stream_to_file(stream, path))
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))  # as Dagster's: the capture is complete


def _fileno(stream: IO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # a test runner's stand-in for the console
        return None


@contextmanager
def tee_stream_to_file(stream: IO, path: str) -> Iterator[None]:
    """Everything written to `stream`'s file descriptor (by Python, C code or child processes) goes
    to the end of the file at `path`, and is copied from there to where the descriptor pointed."""
    fd = _fileno(stream)
    if fd is None:  # a Python object (a test runner's stand-in): only Python writes reach it anyway
        with _tee_writes(stream, path):
            yield
        return
    if os.name == "nt":
        with mirror_stream_to_file(stream, path):  # Dagster's way
            yield
        return
    ensure_file(path)
    _flush(stream)
    log = os.open(path, os.O_WRONLY | os.O_APPEND)
    start = os.fstat(log).st_size
    console = os.dup(fd)
    stop = threading.Event()
    # the follower gets its own copy of the console's descriptor and closes it when it is done
    follower = threading.Thread(
        target=_follow, args=(path, start, os.dup(console), stop), daemon=True, name="gitops-log-follow"
    )
    follower.start()
    os.dup2(log, fd)
    os.close(log)
    try:
        yield
    finally:
        _flush(stream)
        os.dup2(console, fd)
        os.close(console)
        stop.set()
        follower.join(DRAIN_SECONDS)


class _Tee:
    """A stream that writes to `stream` and to `log`; everything else is `stream`'s."""

    def __init__(self, stream: IO, log: IO):
        self._stream, self._log = stream, log

    def write(self, text: str) -> int:
        self._log.write(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._log.flush()
        self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextmanager
def _tee_writes(stream: IO, path: str) -> Iterator[None]:
    """`stream`, when it is sys.stdout or sys.stderr, is replaced there by one that also appends to
    the file at `path`, for the time of the step."""
    ensure_file(path)
    names = [n for n in ("stdout", "stderr") if getattr(sys, n) is stream]
    with open(path, "a", encoding="utf-8") as log:
        tee = _Tee(stream, log)
        for n in names:
            setattr(sys, n, tee)
        try:
            yield
        finally:
            for n in names:
                if getattr(sys, n) is tee:
                    setattr(sys, n, stream)
            log.flush()


def _flush(stream: IO) -> None:
    with suppress(ValueError, OSError):  # a step may have closed it
        stream.flush()


def _follow(path: str, offset: int, console: int, stop: threading.Event) -> None:
    """Copy the file from `offset` to `console` as it grows; once `stop` is set, to its end."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            while True:
                stopping = stop.is_set()  # read after it: nothing written before the stop is missed
                chunk = log.read(65536)
                if chunk:
                    _write_all(console, chunk)
                elif stopping:
                    return
                else:
                    stop.wait(POLL_SECONDS)
    except OSError:  # the file is gone (a wiped home): the step's output is in the file or nowhere
        return
    finally:
        os.close(console)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
        except OSError:  # the console is gone (a closed terminal): the file has everything
            return
