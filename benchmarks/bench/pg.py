"""The PostgreSQL server of the PostgreSQL cases, and throwaway databases on it.

Which server: `--pg-url` (or env GITOPS_DATA_BENCH_PG_URL) when given, else the local server at
127.0.0.1:5432 when it answers, else a throwaway server started with `pgserver` (PyPI) in the scratch
folder, else none: the PostgreSQL cases are then skipped with the reason. Every database a case uses is
created for this run and dropped at its end (also when a case fails).
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

ENV = "GITOPS_DATA_BENCH_PG_URL"
LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"
PGSERVER = "pgserver"  # --pg-url pgserver: always start a throwaway server


class NoServer(RuntimeError):
    """No PostgreSQL server to run on (the case is skipped, with this reason)."""


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database of the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def _reachable(url: str) -> str | None:
    """None when a connection works, else why not (one line)."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
        return None
    except psycopg.Error as exc:
        return " ".join(str(exc).split())[:200]


def _start_pgserver(ctx) -> str:
    import pgserver

    folder = ctx.fresh("pgserver")
    server = pgserver.get_server(str(folder), cleanup_mode="stop")
    ctx.cleanups.append(server.cleanup)
    return server.get_uri()


def _resolve(ctx) -> dict:
    wanted = ctx.pg_url or os.environ.get(ENV)
    if wanted and wanted != PGSERVER:
        why = _reachable(wanted)
        if why:
            raise NoServer(f"the PostgreSQL server given ({redact(wanted)}) does not answer: {why}")
        return {"url": wanted, "source": "--pg-url" if ctx.pg_url else ENV}
    local_problem = None
    if wanted != PGSERVER:
        local_problem = _reachable(LOCAL)
        if local_problem is None:
            return {"url": LOCAL, "source": "local server"}
    try:
        return {"url": _start_pgserver(ctx), "source": "throwaway pgserver"}
    except Exception as exc:  # no pgserver, or it cannot start here
        raise NoServer(
            f"no PostgreSQL server: {LOCAL} does not answer ({local_problem}) and pgserver could not "
            f"start one ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); set {ENV}"
        ) from None


def server(ctx) -> dict:
    """{'url': admin URL, 'source': how it was found, 'version': server version}; raises NoServer."""
    if "pg_server" not in ctx.cache:
        try:
            found = _resolve(ctx)
            found["version"] = scalar(found["url"], "show server_version")
            ctx.cache["pg_server"] = found
            print(f"  PostgreSQL {found['version']} ({found['source']}): {redact(found['url'])}")
        except NoServer as exc:
            ctx.cache["pg_server"] = exc
            print(f"  PostgreSQL cases skipped: {exc}")
    found = ctx.cache["pg_server"]
    if isinstance(found, NoServer):
        raise found
    return found


def database(ctx, name: str, template_url: str | None = None) -> str:
    """The URL of a new database `gitops_bench_<pid>_<name>` (dropped when the run ends): empty, or
    a copy of the database at `template_url` (nobody may be connected to that one)."""
    admin = server(ctx)["url"]
    db = f"gitops_bench_{os.getpid()}_{name}"
    template = f' template "{urlsplit(template_url).path.lstrip("/")}"' if template_url else ""
    admin_exec(admin, f'drop database if exists "{db}" with (force)', f'create database "{db}"{template}')
    if not any(getattr(c, "database", None) == db for c in ctx.cleanups):
        ctx.cleanups.append(_Dropper(admin, db))
    return with_database(admin, db)


class _Dropper:
    def __init__(self, admin: str, database: str):
        self.admin, self.database = admin, database

    def __call__(self) -> None:
        admin_exec(self.admin, f'drop database if exists "{self.database}" with (force)')


def admin_exec(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        for sql in statements:
            con.execute(sql)


def query(url: str, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of one query (`?` placeholders, as the DuckDB helper) on a plain psycopg connection."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        cur = con.execute(sql.replace("?", "%s"), params) if params else con.execute(sql)
        return cur.fetchall()


def scalar(url: str, sql: str):
    return query(url, sql)[0][0]


def redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)
