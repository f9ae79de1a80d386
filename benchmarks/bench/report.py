"""Result rows: one table on the terminal (rich), JSON and CSV files."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table


@dataclass
class Row:
    case: str  # "1", "5b", ...
    name: str
    ours: float | None = None
    baseline: float | None = None
    peer: float | None = None  # a third column: the same step in another tool (dbt), same unit
    peer_name: str = ""
    unit: str = "s"  # unit of ours/baseline: s, MB
    target: str = "-"  # human text, e.g. "<= 1.3x", "<= 1.5 s"
    limit: float | None = None  # the number the target compares with
    limit_on: str = "ratio"  # "ratio" or "ours"
    ours_mb: float | None = None  # peak RSS of the process during the step
    baseline_mb: float | None = None
    notes: str = ""
    status: str = "ok"  # ok | skipped | error
    details: dict = field(default_factory=dict)  # extra numbers, kept in the JSON only

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.baseline:
            return None
        return self.ours / self.baseline

    @property
    def peer_ratio(self) -> float | None:
        if self.ours is None or not self.peer:
            return None
        return self.ours / self.peer

    @property
    def met(self) -> bool | None:
        value = self.ratio if self.limit_on == "ratio" else self.ours
        if self.limit is None or value is None or self.status != "ok":
            return None
        return value <= self.limit

    def record(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "peer_ratio": self.peer_ratio, "met": self.met}


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    return f"{value:,.1f} {unit}".strip()


def _verdict(row: Row) -> str:
    if row.status != "ok":
        return f"[yellow]{row.status}[/]" if row.status == "skipped" else f"[red]{row.status}[/]"
    return {True: "[green]met[/]", False: "[red]missed[/]", None: ""}[row.met]


def table(rows: list[Row], title: str) -> Table:
    t = Table(title=title, show_lines=False)
    for col, kw in [
        ("case", {}),
        ("what", {"max_width": 38}),
        ("ours", {"justify": "right"}),
        ("baseline", {"justify": "right"}),
        ("ratio", {"justify": "right"}),
        ("peer (ours/peer)", {"justify": "right"}),
        ("target", {}),
        ("", {}),
        ("peak MB ours / base", {"justify": "right"}),
        ("notes", {"max_width": 70}),
    ]:
        t.add_column(col, **kw)
    for r in rows:
        mem = f"{_num(r.ours_mb)} / {_num(r.baseline_mb)}" if r.ours_mb or r.baseline_mb else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        peer = (
            f"{r.peer_name} {_num(r.peer, r.unit)} ({r.peer_ratio:.2f}x)" if r.peer_ratio is not None else "-"
        )
        t.add_row(
            r.case,
            escape(r.name),
            _num(r.ours, r.unit),
            _num(r.baseline, r.unit),
            ratio,
            peer,
            r.target,
            _verdict(r),
            mem,
            escape(r.notes),
        )
    return t


def show(rows: list[Row], title: str) -> None:
    Console(width=220).print(table(rows, title))


def write(rows: list[Row], out: Path, meta: dict) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "results.json", out / "results.csv"
    json_path.write_text(
        json.dumps({"meta": meta, "rows": [r.record() for r in rows]}, indent=2, default=str)
    )
    columns = [
        "case",
        "name",
        "ours",
        "baseline",
        "unit",
        "ratio",
        "peer_name",
        "peer",
        "peer_ratio",
        "target",
        "met",
        "ours_mb",
        "baseline_mb",
        "status",
        "notes",
    ]
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r.record())
    return json_path, csv_path
