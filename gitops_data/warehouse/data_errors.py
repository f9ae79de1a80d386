"""What a user reads when the data of a seed or a file source cannot be loaded: one short message
naming the repo file, its line, the column and value the engine reports, the model's YAML file:line,
and a remedy that can be written in this project's YAML (pure: text in, text out).

DuckDB's reader errors are long (its own options dump, remedies such as `types={...}` or
`sample_size=-1` that are arguments of `read_csv`, not keys of our YAML) and name the scratch file
the build read, not the file in the repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_ORIGINAL = re.compile(r"Original Line: ?(.*)")
_CONVERT = re.compile(
    r'Error when converting column "(?P<column>[^"]+)"\. Could not convert string "(?P<value>.*?)" '
    r"to '(?P<type>[^']+)'"
)
_MANUAL = "manually set"  # DuckDB: the type came from `types=` (what the project declared)
# DuckDB's advice and option dump after the first paragraph of a reader error
_NOISE = re.compile(r"\n\s*(Possible (fixes|solutions)|Column \S+ is being converted|\s*file = )", re.S)


@dataclass(frozen=True)
class Conversion:
    """A value of a data file the engine could not convert to a column's type."""

    line: int | None  # the file's line (1 = the header of a CSV)
    column: str
    value: str
    type: str
    declared: bool  # the type is the project's (`columns:`), not the engine's guess


def parse_conversion(text: str) -> Conversion | None:
    """The line, column, value and type of a DuckDB CSV conversion error, if `text` is one."""
    m = _CONVERT.search(text)
    if m is None:
        return None
    line = _CSV_LINE.search(text)
    return Conversion(
        int(line.group(1)) if line else None,
        m.group("column"),
        m.group("value"),
        m.group("type"),
        _MANUAL in text,
    )


def _first_paragraph(text: str, scratch: str, data_file: str) -> str:
    """The engine's message up to its advice and options, the scratch file named as the repo's."""
    text = text.replace(scratch, data_file) if scratch else text
    cut = _NOISE.search(text)
    text = text[: cut.start()] if cut else text
    original = _ORIGINAL.search(text)
    text = _ORIGINAL.sub("", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if original is not None:
        lines.append(f"(the line reads: {original.group(1).strip()[:200]})")
    return " ".join(lines)


def explain_load_error(
    text: str, *, model: str, kind: str, location: str, data_file: str, scratch: str = ""
) -> str:
    """One message for an engine error raised while loading `data_file` (repo-relative) into the
    build of `model` (a seed or source declared at `location`, the YAML file:line)."""
    where = f" ({location})" if location else ""
    conv = parse_conversion(text)
    if conv is None:
        return (
            f"loading {data_file} into {kind} {model!r}{where} failed: "
            f"{_first_paragraph(text, scratch, data_file)}"
        )
    at = f"{data_file}:{conv.line}" if conv.line else data_file
    type_ = conv.type.lower()
    if conv.declared:
        remedy = (
            f"fix the value in {data_file}, or declare under `columns:` of {kind} {model!r} a type that "
            f"every value of {conv.column!r} has (e.g. `{conv.column}: {{type: varchar}}`)"
        )
        why = f"declared as {type_}"
    else:
        remedy = (
            f"declare the column's type under `columns:` of {kind} {model!r} "
            f"(e.g. `{conv.column}: {{type: varchar}}`), or fix the value in {data_file}"
        )
        why = f"the type guessed from the first rows is {type_}"
    return (
        f"{at}: column {conv.column!r}: value {conv.value!r} is not a {type_} ({why}); "
        f"{kind} {model!r}{where} not built. To fix: {remedy}"
    )
