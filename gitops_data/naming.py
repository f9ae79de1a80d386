"""Pure naming rules: identifiers, quoting, branch -> schema mapping, physical table names."""

from __future__ import annotations

import hashlib
import re

from gitops_data.errors import IdentifierError

MAX_IDENTIFIER = 63
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HASHED_SUFFIX = re.compile(r"_[0-9a-f]{8}$")
# physical_table's names, and the segment tables of a build (`_s`, `_c`)
_BUILD_TABLE = re.compile(r"__[0-9a-f]{12}__[0-9a-f]{8}(_s|_c)?$")
# Words DuckDB will not accept unquoted as a table name; we quote everything, but a model called
# `select` is a trap for every consumer that writes SQL by hand, so we refuse it.
RESERVED = frozenset(
    """all analyse analyze and any array as asc asymmetric both case cast check collate column constraint
    create default deferrable desc distinct do else end except false fetch for foreign from grant group
    having in initially intersect into lateral leading limit not null offset on only or order placing
    primary references returning select some symmetric table then to trailing true union unique using
    variadic when where window with""".split()
)


def identifier_problem(name: object, max_length: int | None = MAX_IDENTIFIER) -> str | None:
    """Why `name` is not a usable identifier, or None when it is. `max_length`: the engine's limit
    (PostgreSQL's 63; None on DuckDB, which has none)."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if max_length is not None and len(name) > max_length:
        return f"is {len(name)} characters long; the limit is {max_length} (set `alias` to a shorter name)"
    if not _IDENT.match(name):
        return "may only contain ASCII letters, digits and '_' and must not start with a digit"
    if name.lower() in RESERVED:
        return "is an SQL reserved word"
    return None


def check_identifier(name: str, what: str = "name") -> str:
    problem = identifier_problem(name)
    if problem:
        raise IdentifierError(f"{what} {name!r} {problem}")
    return name


def quote(name: str) -> str:
    """Quote an identifier for DuckDB (double quotes, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}"


def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def branch_slug(ref: str) -> str:
    """Map a branch name to an identifier fragment, injectively.

    A name that is already lower-case `[a-z0-9_]` maps to itself; anything else is slugged and gets
    an 8-hex hash of the original name, so `feature/x` and `feature-x` never share a schema. A plain
    name that happens to end like a hash suffix is hashed too, so it cannot collide with one.
    """
    if not ref or not ref.strip():
        raise IdentifierError("branch name must not be empty")
    if re.fullmatch(r"[a-z0-9_]+", ref) and not _HASHED_SUFFIX.search(ref) and len(ref) <= 40:
        return ref
    slug = re.sub(r"[^a-z0-9]+", "_", ref.lower()).strip("_")[:30] or "ref"
    return f"{slug}_{short_hash(ref)}"


def environment_schema(external_schema: str, ref: str, production_ref: str) -> str:
    """External schema of the environment that follows `ref`."""
    if ref == production_ref:
        return external_schema
    return f"{external_schema}__{branch_slug(ref)}"


def physical_table(model: str, fingerprint: str, build_id: str) -> str:
    """Name of one build's table in the internal schema: at most MAX_IDENTIFIER - 2 characters (a
    segment adds `_s` or `_c`; PostgreSQL truncates longer names), a long model name cut short
    (the build id keeps the name unique)."""
    suffix = f"__{fingerprint[:12]}__{build_id}"
    return model[: MAX_IDENTIFIER - 2 - len(suffix)] + suffix


def is_build_table(name: str) -> bool:
    """Whether `name` has the shape of a build's table (physical_table, or one of its segments)."""
    return bool(_BUILD_TABLE.search(name))


_FAILURES = "__fail_"


def failures_prefix(build_table: str) -> str:
    """What the names of a build's failures tables (dbt's `store_failures`) start with: the build's
    table name, shortened with its hash when a check's suffix would not fit the identifier limit."""
    if len(build_table) + len(_FAILURES) + 6 <= MAX_IDENTIFIER:
        return build_table + _FAILURES
    keep = MAX_IDENTIFIER - len(_FAILURES) - 6 - 9
    return f"{build_table[:keep]}_{short_hash(build_table)}{_FAILURES}"


def failures_table(build_table: str, check: str) -> str:
    """The table beside a build holding the failing rows of its check `check` (named from both,
    the check's own name when it fits, else its hash; gc drops it with the build)."""
    prefix = failures_prefix(build_table)
    if _IDENT.match(check) and len(prefix) + len(check) <= MAX_IDENTIFIER:
        return prefix + check
    return prefix + short_hash(check, 6)
