"""dbt's per-run values, `invocation_id` and `run_started_at`, as the build's own: rendering writes
placeholders into the SQL (so the fingerprint does not change from one run to the next), and the
build fills them in when it runs (`fill_build_values`) with its build id and its start time.

`run_started_at` is a timezone-aware datetime while rendering: formatting it (`str`, `isoformat`,
`strftime`, after `astimezone(...)`) gives a placeholder; comparing it or computing with it uses the
time of the render, and what that decides is written into the SQL as it is.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

INVOCATION_ID = "__gitops_data_invocation_id__"
_STARTED = "__gitops_data_run_started_at_{fmt}_{tz}__"
_STARTED_RE = re.compile(r"__gitops_data_run_started_at_([0-9a-f]*)_([0-9a-f]*)__")
_STR, _ISO = "str", "iso"


def _hex(text: str) -> str:
    return text.encode().hex()


class RunStartedAt(dt.datetime):
    """`run_started_at`: a datetime whose text is a placeholder for the build's start time."""

    _tz_name: str = "UTC"

    @classmethod
    def now_utc(cls) -> RunStartedAt:
        now = dt.datetime.now(dt.UTC)
        return cls(
            now.year, now.month, now.day, now.hour, now.minute, now.second, now.microsecond, tzinfo=dt.UTC
        )

    def _plain(self) -> dt.datetime:
        return dt.datetime(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.microsecond,
            self.tzinfo,
        )

    def __add__(self, other: Any) -> Any:
        return self._plain() + other

    def __sub__(self, other: Any) -> Any:
        return self._plain() - (other._plain() if isinstance(other, RunStartedAt) else other)

    def _token(self, fmt: str) -> str:
        return _STARTED.format(fmt=_hex(fmt), tz=_hex(self._tz_name))

    def __str__(self) -> str:
        return self._token(_STR)

    def __format__(self, spec: str) -> str:
        return self.strftime(spec) if spec else str(self)

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return self._token(_ISO if sep == "T" and timespec == "auto" else f"{_ISO}{sep}{timespec}")

    def strftime(self, fmt: str) -> str:
        return self._token(f"%{fmt}")

    def astimezone(self, tz: Any = None) -> RunStartedAt:
        moved = dt.datetime.astimezone(self, tz)
        out = RunStartedAt(
            moved.year,
            moved.month,
            moved.day,
            moved.hour,
            moved.minute,
            moved.second,
            moved.microsecond,
            tzinfo=moved.tzinfo,
        )
        out._tz_name = str(getattr(tz, "zone", None) or tz or "UTC")
        return out


def _formatted(started: dt.datetime, fmt: str, tz_name: str) -> str:
    if tz_name != "UTC":
        import zoneinfo

        try:
            started = started.astimezone(zoneinfo.ZoneInfo(tz_name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    if fmt == _STR:
        return str(started)
    if fmt.startswith(_ISO):
        rest = fmt[len(_ISO) :]
        return started.isoformat() if not rest else started.isoformat(rest[0], rest[1:] or "auto")
    return started.strftime(fmt[1:])


def has_build_values(sql: str | None) -> bool:
    return bool(sql) and (INVOCATION_ID in sql or "__gitops_data_run_started_at_" in sql)  # type: ignore[operator]


def fill_build_values(sql: str, build_id: str, started: dt.datetime) -> str:
    """`sql` with the placeholders of `invocation_id` and `run_started_at` filled in."""
    if not has_build_values(sql):
        return sql
    sql = sql.replace(INVOCATION_ID, build_id)
    return _STARTED_RE.sub(
        lambda m: _formatted(started, bytes.fromhex(m.group(1)).decode(), bytes.fromhex(m.group(2)).decode()),
        sql,
    )
