"""Waiting for a busy warehouse: jittered exponential back-off until a deadline, telling the user
on stderr every few seconds who holds it and for how long."""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from gitops_data.errors import WarehouseBusy

T = TypeVar("T")


def lock_timeout() -> float:
    """Seconds to wait for the warehouse (GITOPS_DATA_LOCK_TIMEOUT, default 600), read at each call."""
    return float(os.environ.get("GITOPS_DATA_LOCK_TIMEOUT", "600"))


def notice_seconds() -> float:
    """Seconds between two "waiting for the warehouse" lines (GITOPS_DATA_WAIT_NOTICE, default 3)."""
    return float(os.environ.get("GITOPS_DATA_WAIT_NOTICE", "3"))


class Retry(Exception):
    """Raised by an attempt that should be retried after a back-off."""


def waiting_line(what: str, holder: str, waited: float, timeout: float) -> str:
    """One notice of a wait: what is waited for, who holds it (and since when), how long so far."""
    return f"waiting for {what}: {holder}; waited {waited:.0f}s (gives up after {timeout:.0f}s)"


def with_backoff(
    attempt: Callable[[], T],
    timeout: float,
    first: float,
    cap: float,
    busy: str,
    holder: Callable[[str], str] | None = None,
    what: str = "the warehouse",
) -> T:
    """Call `attempt()` until it stops raising Retry; jittered exponential back-off; WarehouseBusy
    with the message `busy` (`{why}`: the last Retry's message) after `timeout` seconds. With
    `holder` (the last Retry's message -> who holds `what`), a line on stderr every
    `notice_seconds()` of waiting says who and for how long."""
    start = time.monotonic()
    deadline = start + timeout
    every = notice_seconds()
    next_notice = start + every
    delay = first
    while True:
        try:
            return attempt()
        except Retry as why:
            reason = why.args[0] if why.args else ""
            now = time.monotonic()
            if now >= deadline:
                raise WarehouseBusy(busy.format(why=reason)) from None
            if holder is not None and now >= next_notice:
                print(waiting_line(what, holder(reason), now - start, timeout), file=sys.stderr, flush=True)
                next_notice = now + every
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, cap)
