"""Waiting for a busy warehouse: jittered exponential back-off until a deadline."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from gitops_data.errors import WarehouseBusy

T = TypeVar("T")


def lock_timeout() -> float:
    """Seconds to wait for the warehouse (GITOPS_DATA_LOCK_TIMEOUT, default 600), read at each call."""
    return float(os.environ.get("GITOPS_DATA_LOCK_TIMEOUT", "600"))


class Retry(Exception):
    """Raised by an attempt that should be retried after a back-off."""


def with_backoff(attempt: Callable[[], T], timeout: float, first: float, cap: float, busy: str) -> T:
    """Call `attempt()` until it stops raising Retry; jittered exponential back-off; WarehouseBusy
    with the message `busy` (`{why}`: the last Retry's message) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = first
    while True:
        try:
            return attempt()
        except Retry as why:
            if time.monotonic() >= deadline:
                raise WarehouseBusy(busy.format(why=why.args[0] if why.args else "")) from None
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, cap)
