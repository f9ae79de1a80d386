"""Pure: which builds must be kept (served now, or needed to roll back to a retained publish)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gitops_data.plan import BuildRecord
from gitops_data.project.schema import Retention


@dataclass(frozen=True)
class PublishEntry:
    env: str
    published_at: datetime
    builds: frozenset[str]


def retained_builds(
    builds: list[BuildRecord],
    publishes: list[PublishEntry],
    serving: set[str],
    retention: Retention,
    now: datetime,
    grace: timedelta = timedelta(minutes=10),
    protected_commits: frozenset[str] = frozenset(),
) -> set[str]:
    """Build ids to keep: every build any environment serves; every build of the last
    `retention.publishes` publishes of each environment (and of any publish younger than
    `retention.days`); builds made for `protected_commits` (the heads of tracked branches, whose
    publish may be in progress); and builds younger than `grace`, which a plan in flight may reuse."""
    keep = set(serving)
    by_env: dict[str, list[PublishEntry]] = {}
    for p in publishes:
        by_env.setdefault(p.env, []).append(p)
    for entries in by_env.values():
        entries.sort(key=lambda p: p.published_at, reverse=True)
        for i, p in enumerate(entries):
            young = retention.days is not None and now - p.published_at <= timedelta(days=retention.days)
            if i < retention.publishes or young:
                keep |= p.builds
    keep |= {
        b.build_id
        for b in builds
        if b.commit in protected_commits or (b.created_at is not None and now - b.created_at < grace)
    }
    return keep
