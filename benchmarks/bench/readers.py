"""Readers that query published views in a loop while a publish runs (PostgreSQL cases).

Each reader is its own process (spawned, so it shares no connection or GIL with the measured step)
with its own autocommit psycopg connection, like a dashboard: it runs one query back to back, with
no pause, until stopped. The query returns two values that are equal whenever everything it read
belongs to one commit (the consistency check); a row where they differ is a "mix". Per reader:
queries, latency of each (the worst is the longest a reader waited on a publish), errors, mixes,
and the distinct states seen (so a run in which no reader saw the flip is visible).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator

READY_TIMEOUT = 60.0


def _loop(url: str, sql: str, stop, ready, out) -> None:
    try:
        _run(url, sql, stop, ready, out)
    except BaseException as exc:  # tell the parent instead of leaving it waiting
        message = f"reader crashed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        ready.put(message)
        out.put({"crash": message})
        raise


def _run(url: str, sql: str, stop, ready, out) -> None:
    import psycopg

    latencies: list[float] = []
    errors: list[str] = []
    mixes: list[str] = []
    states: list[str] = []
    con = psycopg.connect(url, autocommit=True)
    con.execute(sql).fetchone()  # warm: the connection and the plan cache are ready before the clock
    ready.put("ready")
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            row = con.execute(sql).fetchone()
        except psycopg.Error as exc:
            latencies.append(time.perf_counter() - t0)
            errors.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}")
            if con.broken:
                con = psycopg.connect(url, autocommit=True)
            continue
        latencies.append(time.perf_counter() - t0)
        first, second = row[0], row[1]
        if first != second:
            mixes.append(f"{first!r} != {second!r}")
        state = str(first)
        if state not in states and len(states) < 20:
            states.append(state)
    con.close()
    out.put({"latencies": latencies, "errors": errors, "mixes": mixes, "states": states})


def _drain(queue, procs, wanted: int, timeout: float) -> list:
    """Up to `wanted` items of `queue`; stops early when every process has exited and it is empty."""
    import queue as queue_module

    items, deadline = [], time.monotonic() + timeout
    while len(items) < wanted and time.monotonic() < deadline:
        try:
            items.append(queue.get(timeout=0.2))
        except queue_module.Empty:
            if not any(p.is_alive() for p in procs):
                break
    return items


@contextlib.contextmanager
def readers(url: str, sql: str, count: int = 4) -> Iterator[dict]:
    """Run `count` readers of `sql` (on database `url`) around the body; the yielded dict gets their
    summary when the body ends (see `summary`). With count 0, yields {} and starts nothing."""
    out_stats: dict = {}
    if count <= 0:
        yield out_stats
        return
    import multiprocessing

    mp = multiprocessing.get_context("spawn")
    stop, ready, out = mp.Event(), mp.Queue(), mp.Queue()
    procs = [mp.Process(target=_loop, args=(url, sql, stop, ready, out), daemon=True) for _ in range(count)]
    for p in procs:
        p.start()
    results: list[dict] = []
    try:
        started = _drain(ready, procs, count, READY_TIMEOUT)
        failed = [s for s in started if s != "ready"]
        if failed or len(started) < count:
            raise RuntimeError(failed[0] if failed else f"only {len(started)} of {count} readers started")
        time.sleep(0.05)  # every reader is in its loop before the body starts
        yield out_stats
        time.sleep(0.1)  # and they run a little past its end, to see the state it left
    finally:
        stop.set()
        results = _drain(out, procs, count, READY_TIMEOUT)
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    crashed = [r["crash"] for r in results if "crash" in r]
    if crashed:
        raise RuntimeError(crashed[0])
    out_stats.update(summary(results, count))


def summary(results: list[dict], count: int) -> dict:
    latencies = [x for r in results for x in r["latencies"]]
    errors = [e for r in results for e in r["errors"]]
    mixes = [m for r in results for m in r["mixes"]]
    states = sorted({s for r in results for s in r["states"]})
    return {
        "readers": count,
        "readers_reported": len(results),
        "queries": len(latencies),
        "max_wait": max(latencies, default=None),
        "p50_wait": statistics.median(latencies) if latencies else None,
        "p99_wait": sorted(latencies)[int(len(latencies) * 0.99)] if latencies else None,
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "mixes": len(mixes),
        "mix_samples": mixes[:5],
        "states": states,
    }


def describe(stats: dict) -> str:
    """One line for a row's notes."""
    if not stats:
        return "no readers"
    line = (
        f"{stats['readers']} readers: {stats['queries']:,} queries, worst wait "
        f"{stats['max_wait'] * 1000:.0f} ms (p50 {stats['p50_wait'] * 1000:.1f} ms), "
        f"{stats['errors']} errors, {stats['mixes']} mixed results, "
        f"{len(stats['states'])} distinct states seen"
    )
    if stats["readers_reported"] != stats["readers"]:
        line += f" [only {stats['readers_reported']} readers reported]"
    if stats["error_samples"]:
        line += f"; first error: {stats['error_samples'][0]}"
    return line


def problems(stats: dict) -> str:
    """Why these readers' run is a failure ('' when it is not): errors, mixes, missing readers."""
    if not stats:
        return ""
    bad = []
    if stats["errors"]:
        bad.append(f"{stats['errors']} reader errors")
    if stats["mixes"]:
        bad.append(f"{stats['mixes']} mixed results")
    if stats["readers_reported"] != stats["readers"]:
        bad.append(f"{stats['readers'] - stats['readers_reported']} readers did not report")
    return ", ".join(bad)
