"""Time and peak memory of one measured step, inside the process that runs it (stdlib only).

Peak memory is the process's peak resident set size (VmHWM) *during the step*: the high-water mark
is reset through /proc/self/clear_refs right before the step and read right after it. It counts
native memory (DuckDB, Arrow, Polars buffers), not just Python objects, and includes what was
already resident when the step started (interpreter, imported libraries), so a step that imports
Dagster starts higher than one that only imports DuckDB. Each side of a comparison runs in its own
child process, so one side's allocations never inflate the other's number.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

_HWM = re.compile(r"VmHWM:\s+(\d+)\s+kB")
PROFILE_DIR = "GITOPS_BENCH_PROFILE_DIR"  # set by `run.py --profile`: measured steps run under pyinstrument


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    try:
        return int(_HWM.search(Path("/proc/self/status").read_text()).group(1)) / 1024
    except (OSError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def _profiler(name: str) -> Iterator[None]:
    folder = os.environ.get(PROFILE_DIR)
    if not folder:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.005)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        Path(folder).mkdir(parents=True, exist_ok=True)
        text = profiler.output_text(unicode=True, color=False, show_all=False)
        (Path(folder) / f"{name}.txt").write_text(text)


@contextlib.contextmanager
def step(name: str = "step") -> Iterator[dict]:
    """Measure the body: yields a dict that gets `seconds` and `peak_mb` when the body ends."""
    gc.collect()
    reset_peak()
    out: dict = {}
    with _profiler(name):
        t0 = time.perf_counter()
        yield out
        out["seconds"] = time.perf_counter() - t0
    out["peak_mb"] = peak_mb()


def repeat(fn: Callable[[], object], times: int, name: str = "step") -> dict:
    """Run `fn` `times` times, each as a measured step; the median time and the largest peak."""
    runs = []
    for i in range(times):
        with step(f"{name}_{i}" if times > 1 else name) as m:
            fn()
        runs.append(m)
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_mb": max(r["peak_mb"] for r in runs),
        "all_seconds": [r["seconds"] for r in runs],
    }


def spawn(cmd: list[str], log: Path | None = None, timeout: float | None = None, **kwargs) -> dict:
    """Run a subprocess to its end: wall seconds, exit code, and its own peak RSS (from wait4)."""
    import subprocess
    import threading

    sink = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, **kwargs)
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer:
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        if timer:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            sink.close()
    return {"seconds": seconds, "returncode": proc.returncode, "peak_mb": usage.ru_maxrss / 1024}


def wall(cmd: list[str], times: int, **kwargs) -> dict:
    """Median wall time of a command (start to exit, timed by a small wrapper process that forks
    it, see timed.py) and the largest peak RSS of the command over the runs."""
    import json
    import sys
    import tempfile

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "timed.json"
        for _ in range(times):
            outer = spawn(
                [sys.executable, str(Path(__file__).with_name("timed.py")), str(result), *cmd], **kwargs
            )
            if outer["returncode"] != 0:
                raise RuntimeError(f"timing wrapper exited {outer['returncode']} for {' '.join(cmd)}")
            runs.append(json.loads(result.read_text()))
    bad = [r for r in runs if r["returncode"] != 0]
    if bad:
        raise RuntimeError(f"{' '.join(cmd)} exited {bad[0]['returncode']}")
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_mb": max(r["peak_mb"] for r in runs),
        "all_seconds": [r["seconds"] for r in runs],
    }
