"""What the asset graph says about a branch head it cannot show as built: an invalid head (the
location shows its newest valid ancestor), a head blocked by checks, a failed build."""

from __future__ import annotations

import logging

from gitops_data import gitrepo
from gitops_data.deployment.core import Deployment
from gitops_data.errors import GitopsError, ProjectError
from gitops_data.plan import Status

log = logging.getLogger("gitops_data.head_state")
_SHOWN = (Status.BLOCKED, Status.FAILED, Status.INVALID)


def shown_commit(ws: Deployment, sha: str, depth: int = 20) -> str | None:
    """`sha` if its project is valid, else the newest valid first-parent ancestor (None if none)."""
    for candidate in gitrepo.first_parents(ws.repo, sha, depth):
        try:
            ws.project(candidate)
            return candidate
        except ProjectError:
            continue
    return None


def current_pins(ws: Deployment) -> dict[str, str]:
    """ref -> the commit whose assets a (re)load of the code location shows now."""
    pins = {}
    for ref, sha in ws.tracked_heads().items():
        shown = shown_commit(ws, sha)
        if shown is not None:
            pins[ref] = shown
    return pins


def head_notes(ws: Deployment, heads: dict[str, str], shown: dict[str, str]) -> dict[str, str]:
    """ref -> one line on why its head is not what its environment serves (refs that are fine: none).
    `shown`: ref -> the commit whose assets the location shows."""
    notes: dict[str, str] = {}
    for ref, head in heads.items():
        if ref in shown and shown[ref] != head:
            notes[ref] = f"head {head[:10]} is invalid; the assets shown are of {shown[ref][:10]}"
    try:
        with ws.catalog() as cat:
            statuses = cat.ref_statuses()
    except GitopsError as exc:  # a busy warehouse: the notes come with the next reload
        log.warning("head states unknown: %s", exc)
        return notes
    for ref, head in heads.items():
        st = statuses.get(ref)
        if st is not None and st.commit == head and st.status in _SHOWN:
            reason = " ".join(st.reason.split())[:300]
            where = f"; the assets shown are of {shown[ref][:10]}" if shown.get(ref, head) != head else ""
            notes[ref] = f"head {head[:10]} is {st.status}: {reason}{where}"
    return notes


def with_note(description: str | None, note: str | None) -> str | None:
    """An asset's description with its environment's head note on top."""
    if not note:
        return description
    return f"⚠ {note}" + (f"\n\n{description}" if description else "")
