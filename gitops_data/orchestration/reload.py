"""Reloading the code location, so the asset graph in the UI follows the refs: the webservers to
ask are found, not assumed at localhost:3000 (best effort: publishing never depends on it)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT = "localhost:3000"
_WEBSERVER = ("dagster-webserver", "dagster_webserver", "dagit")


def _args(value: str, flags: tuple[str, ...], args: list[str]) -> str | None:
    for i, a in enumerate(args):
        for f in flags:
            if a == f and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(f + "=") and f.startswith("--"):
                return a.split("=", 1)[1]
    return value or None


def _environ(pid: str) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def running_webservers(home: str | None = None) -> list[str]:
    """host:port of every Dagster webserver on this host serving the instance in `home` (its
    DAGSTER_HOME; any instance when None), read from the process table (`dagster dev -p 3457`
    included: its webserver is a child process with the port on its command line)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not any(any(w in Path(a).name or a == w for w in _WEBSERVER) for a in args[:3]):
            continue
        if home is not None and _environ(entry.name).get("DAGSTER_HOME", home) != home:
            continue
        host = _args("127.0.0.1", ("-h", "--host"), args) or "127.0.0.1"
        port = _args("3000", ("-p", "--port"), args) or "3000"
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        address = f"{host}:{port}"
        if address not in found:
            found.append(address)
    return sorted(found)


def webservers() -> list[str]:
    """Where to ask for a reload: GITOPS_DATA_DAGSTER_WEBSERVER (host:port, or off), else the
    webservers running here for this DAGSTER_HOME, else localhost:3000."""
    target = os.environ.get("GITOPS_DATA_DAGSTER_WEBSERVER")
    if target is not None:
        return [] if target.lower() in ("", "off", "none") else [target]
    return running_webservers(os.environ.get("DAGSTER_HOME")) or [DEFAULT]


def request_reload(location: str) -> str | None:
    """Ask the webservers to reload `location`. Returns a problem to report, or None."""
    problems = []
    targets = webservers()
    for target in targets:
        host, _, port = target.rpartition(":")
        try:
            from dagster_graphql import DagsterGraphQLClient

            DagsterGraphQLClient(host or "localhost", port_number=int(port)).reload_repository_location(
                location
            )
            return None
        except Exception as exc:  # noqa: BLE001 - no webserver there: the UI shows the graph after its next reload
            problems.append(f"{target} ({' '.join(str(exc).split())[:200]})")
    if not problems:
        return None
    return (
        f"could not ask a webserver to reload {location}: {'; '.join(problems)}; builds and publishes go "
        "on without it. Set GITOPS_DATA_DAGSTER_WEBSERVER=host:port, or off"
    )
