"""Alerts as code: deliver events (check_failed, run_failed, published, blocked, drift) to webhooks or files.

A webhook gets a JSON POST, retried with back-off; a delivery that still fails is logged and
returned as an error string — it never raises into the sensor that sent it.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops_data.project.schema import AlertSpec

log = logging.getLogger("gitops_data.alerts")


@dataclass(frozen=True)
class AlertEvent:
    event: str  # check_failed | run_failed | published | blocked | drift
    env: str
    commit: str | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self, alert: str, project: str) -> dict:
        return {
            "alert": alert,
            "project": project,
            **asdict(self),
            "time": datetime.now(UTC).replace(tzinfo=None).isoformat() + "Z",
        }


def _post(url: str, body: bytes, retries: int, timeout: float = 5.0, backoff: float = 0.5) -> str | None:
    last = ""
    for attempt in range(retries + 1):
        try:
            req = urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - URL from the project's YAML
                if 200 <= resp.status < 300:
                    return None
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        if attempt < retries:
            time.sleep(backoff * (2**attempt))
    return last


def deliver(
    alerts: tuple[AlertSpec, ...] | list[AlertSpec], event: AlertEvent, project: str, base_dir: str
) -> list[str]:
    """Send `event` to every alert that listens for it. Returns the deliveries that failed."""
    errors = []
    for alert in alerts:
        if event.event not in alert.on:
            continue
        body = json.dumps(event.payload(alert.name, project), default=str)
        if alert.webhook:
            problem = _post(alert.webhook, body.encode(), alert.retries)
        else:
            assert alert.file is not None  # the validator: exactly one of webhook and file
            try:
                path = Path(base_dir) / alert.file if not Path(alert.file).is_absolute() else Path(alert.file)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a") as fh:
                    fh.write(body + "\n")
                problem = None
            except OSError as exc:
                problem = str(exc)
        if problem:
            msg = f"alert {alert.name!r} ({event.event}) could not be delivered: {problem}"
            log.warning(msg)
            errors.append(msg)
    return errors


def apply_events(
    status: str,
    env: str,
    schema: str,
    commit: str | None,
    detail: str,
    changed: list[str],
    failed: list[tuple[str, str, int | None]],
) -> list[AlertEvent]:
    """The alert events of one apply's outcome: published, blocked, and the checks that failed."""
    events = []
    if status == "published":
        events.append(
            AlertEvent(
                "published",
                env,
                commit,
                f"{schema} now serves {(commit or '')[:10]}: {detail}",
                {"changed": changed},
            )
        )
    if status == "blocked":
        events.append(AlertEvent("blocked", env, commit, detail))
    if failed:
        checks = [{"model": m, "check": c, "failed_rows": n} for m, c, n in failed]
        events.append(
            AlertEvent("check_failed", env, commit, f"{len(failed)} check(s) failed", {"checks": checks})
        )
    return events


def send(
    alerts: tuple[AlertSpec, ...] | list[AlertSpec], events: list[AlertEvent], project: str, base_dir: str
) -> None:
    """Deliver `events`; a failed delivery is logged, never raised."""
    for event in events:
        for problem in deliver(alerts, event, project, base_dir):
            log.warning(problem)
