"""Who holds the warehouse: this process as it names itself to others (pid and command), and what
the operating system says of another process (its command line, how long it has run). Read only
for messages: nothing decides on it."""

from __future__ import annotations

import os
import re
import sys
import time

# DuckDB's IOException when another process has the file open
_DUCKDB_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def this_command() -> str:
    """This process's command, short: the program's name and its first arguments."""
    argv = sys.argv or ["python"]
    words = [os.path.basename(argv[0]), *argv[1:3]]
    return " ".join(w for w in words if w)[:80]


def process_command(pid: int) -> str | None:
    """The command line of process `pid` (Linux /proc), None if unknown or gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    if not words:
        return None
    return " ".join(" ".join([os.path.basename(words[0]), *words[1:4]]).split())[:80]  # one line


def process_age(pid: int) -> float | None:
    """Seconds process `pid` has run (Linux /proc), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_record() -> bytes:
    """What a holder of the warehouse's lock file writes into it: pid, since (epoch s), command."""
    return f"{os.getpid()}\t{time.time():.3f}\t{this_command()}\n".encode()


def describe_lock_record(raw: bytes, now: float | None = None) -> str:
    """`lock_record`'s text as `pid N (command) for Ns`; "another process" if unreadable or stale."""
    now = time.time() if now is None else now
    try:
        pid_s, since_s, command = raw.decode().rstrip("\n").split("\t", 2)
        pid, since = int(pid_s), float(since_s)
    except ValueError:
        return "another process"
    if not alive(pid):
        return "another process"
    return f"pid {pid} ({command}) for {max(0.0, now - since):.0f}s"


def describe_duckdb_holder(message: str) -> str:
    """Who DuckDB says holds its file open (`pid N (command)`), from its lock error's text."""
    m = _DUCKDB_HOLDER.search(message)
    if m is None:
        return "another process"
    pid = int(m.group("pid"))
    command = process_command(pid) or os.path.basename(m.group("program"))
    age = process_age(pid)
    return f"pid {pid} ({command})" + (f", running for {age:.0f}s" if age is not None else "")
