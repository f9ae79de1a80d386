"""Dagster's local compute log manager, capturing a step's stdout and stderr with a thread instead of
two processes.

Dagster's own `LocalComputeLogManager` points the process's stdout and stderr at files and starts,
for each of them, a `tail -F` (which copies the file back to the console, polling once a second)
and a Python process that watches for orphans: four processes a step, about 0.1 s of a sync on 2
cores, and the console can miss the lines written in the last second of a step (dagster#23336).
This one points each of them at a pipe whose reader, a thread of this process, writes every chunk
to the same file and to the console as it comes. The files, their names and everything the UI reads
are Dagster's. `dagster.yaml` selects it:

    compute_logs:
      module: gitops_data.orchestration.compute_logs
      class: LocalComputeLogManager
"""

from __future__ import annotations

import os
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

# How long the end of a step waits for the copy of what it wrote; longer only if a process the step
# started still holds the pipe (its later output then still reaches the file and the console).
DRAIN_SECONDS = 5.0


class LocalComputeLogManager(DagsterLocalComputeLogManager):
    """Compute logs in `base_dir` (default `$DAGSTER_HOME/storage`, where Dagster keeps them)."""

    def __init__(
        self,
        base_dir: str | None = None,
        polling_timeout: float | None = None,
        inst_data: ConfigurableClassData | None = None,
    ):
        if base_dir is None:
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                raise ValueError("set DAGSTER_HOME or the compute log manager's base_dir")
            base_dir = os.path.join(home, "storage")
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
    to the end of the file at `path` and, as before, to where the descriptor pointed."""
    fd = _fileno(stream)
    if fd is None or os.name == "nt":
        with mirror_stream_to_file(stream, path):  # Dagster's way
            yield
        return
    ensure_file(path)
    stream.flush()
    console = os.dup(fd)
    read_end, write_end = os.pipe()
    copier = threading.Thread(target=_copy, args=(read_end, path, console), daemon=True, name="gitops-tee")
    copier.start()
    os.dup2(write_end, fd)
    os.close(write_end)
    try:
        yield
    finally:
        stream.flush()
        os.dup2(console, fd)  # the last write end of the pipe (but a child's) closes: the copier ends
        copier.join(DRAIN_SECONDS)


def _copy(read_end: int, path: str, console: int) -> None:
    """The copier thread: reads the pipe to its end whatever fails (a writer must never block on a
    full pipe), then closes it and its copy of the console's descriptor."""
    out = None
    try:
        try:
            out = open(path, "ab", buffering=0)  # noqa: SIM115 - closed below, after the pipe's end
        except OSError:
            out = None
        while chunk := os.read(read_end, 65536):
            if out is not None:
                try:
                    out.write(chunk)
                except OSError:  # a full disk: the console still gets everything
                    with suppress(OSError):
                        out.close()
                    out = None
            view = memoryview(chunk)
            while view:
                view = view[_write_some(console, view) :]
    finally:
        if out is not None:
            with suppress(OSError):
                out.close()
        os.close(read_end)
        os.close(console)


def _write_some(fd: int, data: memoryview) -> int:
    try:
        return os.write(fd, data)
    except OSError:  # the console is gone (a closed terminal): the file still gets everything
        return len(data)
