"""The catalog: gitops-data's own state tables in the warehouse (builds, audits, segments, plans,
publishes, environments, ref statuses). Every SQL statement on the meta schema is in this class.

Keeping the catalog in the same database as the data is what makes a publish atomic: the view
flips and the record of the publish commit in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gitops_data.engines.base import Engine
from gitops_data.naming import quote
from gitops_data.plan import AuditRecord, BuildRecord, CatalogState, Plan, PlanState, Status, Trigger
from gitops_data.plan.records import Audits


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# The catalog as the first versioned release made it; every change since is a migration below.
BASE = """
create schema if not exists {m};
create table if not exists {m}.builds (
  build_id varchar, model varchar, kind varchar, fingerprint varchar, commit varchar, env varchar,
  run_id varchar, table_name varchar, row_count bigint, columns {json}, created_at timestamp);
create table if not exists {m}.audits (
  build_id varchar, check_name varchar, check_hash varchar, passed boolean, severity varchar,
  failed_rows bigint, sample {json}, run_id varchar, audited_at timestamp, table_rows bigint);
create table if not exists {m}.publishes (
  publish_id varchar, env varchar, schema_name varchar, commit varchar, previous_commit varchar,
  builds {json}, models_changed {json}, run_id varchar, published_at timestamp);
create table if not exists {m}.env_views (
  env varchar, model varchar, build_id varchar, view_sql varchar, definition varchar);
create table if not exists {m}.environments (
  env varchar, schema_name varchar, commit varchar, publish_id varchar, published_at timestamp);
create table if not exists {m}.ref_status (
  env varchar, schema_name varchar, commit varchar, status varchar, reason varchar, updated_at timestamp);
create table if not exists {m}.migrations (version integer, name varchar, applied_at timestamp);
"""


@dataclass(frozen=True)
class Migration:
    """One change of the catalog's schema, applied once per catalog, in order, in a transaction."""

    version: int
    name: str
    sql: str


MIGRATIONS = (
    # catalogs made before migrations were versioned may hold some of this already: `if not exists`
    Migration(
        1,
        "build inputs, versions and reads; segments, checkouts, plans",
        """
alter table {m}.env_views add column if not exists definition varchar;
alter table {m}.builds add column if not exists invalid_reason varchar;
alter table {m}.builds add column if not exists inputs {json};
alter table {m}.builds add column if not exists version varchar;
alter table {m}.builds add column if not exists reads {json};
create table if not exists {m}.segments (build_id varchar, seq integer, table_name varchar);
create table if not exists {m}.checkouts (
  env varchar, schema_name varchar, commit varchar, publish_id varchar, created_at timestamp);
create table if not exists {m}.plans (
  plan_id varchar, env varchar, commit varchar, trigger varchar, body {json}, status varchar,
  reason varchar, created_at timestamp, updated_at timestamp);
""",
    ),
    Migration(
        2,
        "a plan's lifecycle state apart from its outcome; who executes it",
        """
alter table {m}.plans add column outcome varchar;
alter table {m}.plans add column result {json};
alter table {m}.plans add column owner varchar;
alter table {m}.plans add column run_id varchar;
update {m}.plans set outcome = status, status = 'concluded' where status not in ('open', 'concluding');
""",
    ),
)
LATEST = MIGRATIONS[-1].version

_BUILD_COLUMNS = (
    "b.build_id, b.model, b.fingerprint, b.table_name, b.commit, b.run_id, b.row_count, b.created_at, "
    "b.inputs, b.version"
)
_ensured: set[tuple] = set()


def _in(column: str, values: list) -> str:
    """`column IN (?, ...)` for `values` passed as separate parameters (false when empty)."""
    return f"{column} in ({', '.join('?' * len(values))})" if values else "false"


def _build(row: tuple) -> BuildRecord:
    build_id, model, fp, table, commit, run_id, rows, created, inputs, version = row
    return BuildRecord(
        build_id,
        model,
        fp,
        table,
        commit,
        run_id,
        rows,
        created,
        json.loads(inputs) if inputs is not None else None,
        version,
    )


@dataclass(frozen=True)
class RefStatus:
    env: str
    schema: str
    commit: str
    status: Status
    reason: str
    updated_at: datetime


@dataclass(frozen=True)
class PlanRow:
    """A stored plan's lifecycle record (its body: `Catalog.plan`)."""

    plan_id: str
    env: str
    commit: str
    trigger: Trigger
    state: PlanState
    outcome: Status | None  # once concluded
    reason: str
    owner: str | None  # the process executing or concluding it (lifecycle.Owner)
    run_id: str | None  # the Dagster run executing it, once started
    result: str | None  # the concluded result (JSON, lifecycle.ApplyResult)
    created_at: datetime


_PLAN_COLUMNS = "plan_id, env, commit, trigger, status, outcome, reason, owner, run_id, result, created_at"


def _plan_row(row: tuple) -> PlanRow:
    plan_id, env, commit, trigger, state, outcome, reason, owner, run_id, result, created = row
    return PlanRow(
        plan_id,
        env,
        commit,
        Trigger(trigger),
        PlanState(state),
        Status(outcome) if outcome else None,
        reason or "",
        owner,
        run_id,
        result,
        created,
    )


@dataclass(frozen=True)
class Served:
    """What an environment serves: its schema and the publish it serves."""

    env: str
    schema: str
    commit: str
    publish_id: str
    published_at: datetime


@dataclass(frozen=True)
class Checkout:
    """An environment that follows no branch (`gitops-data checkout`)."""

    env: str
    schema: str
    commit: str
    publish_id: str
    created_at: datetime


@dataclass(frozen=True)
class PublishHit:
    """A publish found by the prefix of its id or commit."""

    env: str
    publish_id: str
    commit: str


@dataclass(frozen=True)
class ServedBuild:
    env: str
    model: str
    build_id: str
    table: str
    row_count: int | None
    columns: dict[str, str]
    invalid_reason: str | None


class Catalog:
    """The meta schema `meta` of the warehouse behind `engine`."""

    def __init__(self, engine: Engine, meta: str):
        self.engine = engine
        self.meta = meta
        self.m = quote(meta)
        self._ensure()

    def over(self, engine: Engine) -> Catalog:
        """This catalog through `engine`, another connection to the same database (a sibling)."""
        other = object.__new__(Catalog)
        other.engine, other.meta, other.m = engine, self.meta, self.m
        return other

    def _ensure(self) -> None:
        """Create the catalog, or migrate it to the LATEST version; once per database and process
        (checked once per connection: a turn on the warehouse makes many catalogs over one)."""
        checked = self.engine.__dict__.setdefault("_catalogs_checked", set())
        if self.meta in checked:
            return
        key = self.engine.database_key()
        key = (*key, self.meta) if key else None
        if key is None or key not in _ensured or "migrations" not in self.engine.objects(self.meta):
            self.migrate()
            if key is not None:
                _ensured.add(key)
        checked.add(self.meta)

    def version(self) -> int:
        """The migrations applied to this catalog (0: none yet)."""
        return int(self.engine.scalar(f"select coalesce(max(version), 0) from {self.m}.migrations") or 0)

    def migrate(self) -> list[Migration]:
        """Apply the migrations this catalog lacks, each in its own transaction; the ones applied."""
        self.engine.execute(BASE.format(m=self.m, json=self.engine.json_type))
        applied = []
        for mig in MIGRATIONS:
            if mig.version <= self.version():
                continue
            with self.engine.transaction():
                self.engine.execute(mig.sql.format(m=self.m, json=self.engine.json_type))
                self._q("insert into {m}.migrations values (?, ?, ?)", [mig.version, mig.name, now()])
            applied.append(mig)
        return applied

    def _q(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.engine.fetchall(sql.replace("{m}", self.m), params)

    # -- builds -----------------------------------------------------------------------------
    def record_build(
        self, rec: BuildRecord, kind: str, env: str, columns: dict[str, str], reads: tuple[str, ...] = ()
    ) -> None:
        """One build; `reads`: the builds whose tables its object selects from (a view's)."""
        self._q(
            """insert into {m}.builds (build_id, model, kind, fingerprint, commit, env, run_id, table_name,
                   row_count, columns, created_at, inputs, version, reads)
               values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                rec.build_id,
                rec.model,
                kind,
                rec.fingerprint,
                rec.commit,
                env,
                rec.run_id,
                rec.table,
                rec.row_count,
                json.dumps(columns),
                rec.created_at or now(),
                json.dumps(rec.inputs) if rec.inputs is not None else None,
                rec.version,
                json.dumps(list(reads)) if reads else None,
            ],
        )

    def build_shape(self, build_id: str) -> tuple[dict[str, str], tuple[str, ...]]:
        """(columns, builds it reads) of a recorded build."""
        rows = self._q("select columns, reads from {m}.builds where build_id = ?", [build_id])
        columns, reads = rows[0]
        return json.loads(columns), tuple(json.loads(reads)) if reads else ()

    def physical_reads(self) -> dict[str, tuple[str, ...]]:
        """build -> the builds whose tables its object selects from (views and their aliases)."""
        return {
            b: tuple(json.loads(r))
            for b, r in self._q("select build_id, reads from {m}.builds where reads is not null")
        }

    def builds(self) -> list[BuildRecord]:
        return [_build(r) for r in self._q(f"select {_BUILD_COLUMNS} from {{m}}.builds b")]

    def build(self, build_id: str) -> BuildRecord | None:
        rows = self._q(f"select {_BUILD_COLUMNS} from {{m}}.builds b where build_id = ?", [build_id])
        return _build(rows[0]) if rows else None

    def present_builds(self, internal: str, models: list[str]) -> list[BuildRecord]:
        """Valid builds of `models` whose physical table still exists, newest first."""
        present = set(self.engine.objects(internal))
        rows = self._q(
            f"""select {_BUILD_COLUMNS} from {{m}}.builds b where {_in("b.model", models)}
                           and b.invalid_reason is null order by b.created_at desc""",
            models,
        )
        return [b for b in map(_build, rows) if b.table in present]

    def existing_builds(self, internal: str, build_ids: list[str]) -> set[str]:
        """Those of `build_ids` that are recorded, valid, and whose table exists."""
        rows = self._q(
            f"select build_id, table_name from {{m}}.builds where {_in('build_id', build_ids)} "
            "and invalid_reason is null",
            build_ids,
        )
        present = set(self.engine.objects(internal, sorted({t for _, t in rows})))
        return {b for b, t in rows if t in present}

    def tables_of(self, build_ids: list[str]) -> dict[str, str]:
        return dict(
            self._q(
                f"select build_id, table_name from {{m}}.builds where {_in('build_id', build_ids)}", build_ids
            )
        )

    def mark_invalid(self, table: str, reason: str) -> None:
        self._q("update {m}.builds set invalid_reason = ? where table_name = ?", [reason, table])

    def delete_builds(self, build_ids: list[str]) -> None:
        for table in ("audits", "segments", "builds"):
            self._q(f"delete from {{m}}.{table} where {_in('build_id', build_ids)}", build_ids)

    # -- segments ---------------------------------------------------------------------------
    def segments_of(self, build_id: str) -> list[str]:
        return [
            r[0]
            for r in self._q(
                "select table_name from {m}.segments where build_id = ? order by seq", [build_id]
            )
        ]

    def add_segments(self, build_id: str, tables: list[str]) -> None:
        self.engine.executemany(
            f"insert into {self.m}.segments values (?, ?, ?)",
            [[build_id, i, t] for i, t in enumerate(tables, 1)],
        )

    def all_segments(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for build_id, table in self._q("select build_id, table_name from {m}.segments order by seq"):
            out.setdefault(build_id, []).append(table)
        return out

    # -- audits -----------------------------------------------------------------------------
    def record_audits(
        self, build_id: str, run_id: str | None, results: list[Any], table_rows: int | None
    ) -> None:
        """Store check results (objects with name, hash, passed, severity, failed_rows, sample)."""
        ts = now()
        self.engine.executemany(
            f"insert into {self.m}.audits values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    build_id,
                    r.name,
                    r.hash,
                    r.passed,
                    r.severity,
                    r.failed_rows,
                    json.dumps(r.sample, default=str),
                    run_id,
                    ts,
                    table_rows,
                ]
                for r in results
            ],
        )

    def latest_audits(self, build_ids: list[str]) -> Audits:
        """The latest result per build, check and check hash (a check that reads other models has one
        hash per set of builds it read, so environments sharing a build keep their own results)."""
        rows = self._q(
            f"""select build_id, check_name, check_hash, passed, failed_rows from (
                  select *, row_number() over (partition by build_id, check_name, check_hash
                                               order by audited_at desc) as _rn
                  from {{m}}.audits where {_in("build_id", build_ids)}) as a where _rn = 1""",
            build_ids,
        )
        out: Audits = {}
        for build_id, check, chash, passed, failed in rows:
            out.setdefault(build_id, {})[(check, chash)] = AuditRecord(
                build_id, check, chash, bool(passed), failed
            )
        return out

    # -- environments -----------------------------------------------------------------------
    def published_builds(self, env: str | None = None) -> dict[str, dict[str, BuildRecord]]:
        """env -> model -> build it currently serves."""
        sql = (
            f"select v.env, {_BUILD_COLUMNS} from {{m}}.env_views v "
            "join {m}.builds b on b.build_id = v.build_id"
        )
        rows = self._q(sql + (" where v.env = ?" if env else ""), [env] if env else [])
        out: dict[str, dict[str, BuildRecord]] = {}
        for row in rows:
            out.setdefault(row[0], {})[row[2]] = _build(row[1:])
        return out

    def served(self, env: str | None = None) -> list[ServedBuild]:
        rows = self._q(
            """select v.env, v.model, b.build_id, b.table_name, b.row_count, b.columns, b.invalid_reason
                          from {m}.env_views v join {m}.builds b on b.build_id = v.build_id"""
            + (" where v.env = ?" if env else "")
            + " order by v.model, v.env",
            [env] if env else [],
        )
        return [ServedBuild(e, mo, b, t, n, json.loads(c), r) for e, mo, b, t, n, c, r in rows]

    def environments(self) -> dict[str, Served]:
        """env -> what it serves."""
        rows = self._q("select env, schema_name, commit, publish_id, published_at from {m}.environments")
        return {r[0]: Served(*r) for r in rows}

    def env_views(self, env: str) -> dict[str, tuple[str, str | None, str]]:
        """model -> (view sql, definition stored after publishing, build id) of what `env` serves."""
        return {
            mo: (sql, d, b)
            for mo, sql, d, b in self._q(
                "select model, view_sql, definition, build_id from {m}.env_views where env = ?", [env]
            )
        }

    def set_view_definition(self, env: str, model: str, definition: str | None) -> None:
        self._q(
            "update {m}.env_views set definition = ? where env = ? and model = ?", [definition, env, model]
        )

    def state(self, internal: str, env: str, fingerprints: dict[str, str]) -> CatalogState:
        """What the planner needs: reusable builds per (model, fingerprint), their audits, and what
        `env` serves now. A build published somewhere is preferred over a newer unpublished one, so a
        branch points at the very tables production serves (zero copy)."""
        published_all = self.published_builds()
        published = published_all.get(env, {})
        rank: dict[str, int] = {}
        for e, builds in published_all.items():
            for b in builds.values():
                rank[b.build_id] = min(rank.get(b.build_id, 9), 0 if e == env else 1)
        found: dict[tuple[str, str], list[BuildRecord]] = {}
        wanted = set(fingerprints.items())
        for b in self.present_builds(internal, sorted(fingerprints)):  # newest first
            if (b.model, b.fingerprint) in wanted:
                found.setdefault((b.model, b.fingerprint), []).append(b)
        candidates = {k: tuple(sorted(v, key=lambda b: rank.get(b.build_id, 2))) for k, v in found.items()}
        ids = [b.build_id for builds in candidates.values() for b in builds]
        env_row = self.environments().get(env)
        return CatalogState(
            candidates, self.latest_audits(ids), published, env_row.commit if env_row else None
        )

    def record_publish(
        self,
        publish_id: str,
        env: str,
        schema: str,
        commit: str,
        previous: str | None,
        views: dict[str, tuple[str, str, str | None]],
        changes: dict,
        run_id: str | None,
        ts: datetime,
        held_head: str | None = None,
        held_reason: str = "",
    ) -> None:
        """The catalog half of a publish (inside the caller's transaction). `views`: model ->
        (build id, view sql, stored definition)."""
        self._q("delete from {m}.env_views where env = ?", [env])
        self.engine.executemany(
            f"insert into {self.m}.env_views values (?, ?, ?, ?, ?)",
            [[env, n, b, sql, d] for n, (b, sql, d) in views.items()],
        )
        self._q(
            "insert into {m}.publishes values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                publish_id,
                env,
                schema,
                commit,
                previous,
                json.dumps({n: v[0] for n, v in views.items()}),
                json.dumps(changes),
                run_id,
                ts,
            ],
        )
        self._q("delete from {m}.environments where env = ?", [env])
        self._q("insert into {m}.environments values (?, ?, ?, ?, ?)", [env, schema, commit, publish_id, ts])
        if held_head is None:
            self._set_status(env, schema, commit, Status.PUBLISHED, "", ts)
        else:  # the head stays unpublished until the branch moves (apply respects it)
            self._set_status(env, schema, held_head, Status.ROLLED_BACK, held_reason, ts)

    def publish_row(self, env: str, publish_id: str) -> tuple[str, str, dict[str, str]] | None:
        """(schema, commit, model -> build id) of one publish."""
        rows = self._q(
            "select schema_name, commit, builds from {m}.publishes where env = ? and publish_id = ?",
            [env, publish_id],
        )
        return (rows[0][0], rows[0][1], json.loads(rows[0][2])) if rows else None

    def publishes(self) -> list[tuple[str, datetime, frozenset[str]]]:
        """(env, published at, build ids) of every publish (for retention)."""
        return [
            (e, t, frozenset(json.loads(b).values()))
            for e, t, b in self._q("select env, published_at, builds from {m}.publishes")
        ]

    def history(self, env: str, limit: int = 50) -> list[dict]:
        rows = self._q(
            """select published_at, commit, previous_commit, models_changed, run_id, publish_id
                          from {m}.publishes where env = ? order by published_at desc limit ?""",
            [env, limit],
        )
        return [
            {
                "published_at": r[0],
                "commit": r[1],
                "previous_commit": r[2],
                **json.loads(r[3]),
                "run_id": r[4],
                "publish_id": r[5],
            }
            for r in rows
        ]

    def find_publish(self, target: str) -> PublishHit | None:
        """The newest publish whose id or commit starts with `target`."""
        rows = self._q(
            """select env, publish_id, commit from {m}.publishes
               where substr(publish_id, 1, length(?)) = ? or substr(commit, 1, length(?)) = ?
               order by published_at desc limit 1""",
            [target, target, target, target],
        )
        return PublishHit(*rows[0]) if rows else None

    def add_checkout(self, env: str, schema: str, commit: str, publish_id: str) -> None:
        self._q("insert into {m}.checkouts values (?, ?, ?, ?, ?)", [env, schema, commit, publish_id, now()])

    def checkouts(self) -> dict[str, Checkout]:
        """checkout env -> its record: environments that follow no branch."""
        rows = self._q("select env, schema_name, commit, publish_id, created_at from {m}.checkouts")
        return {r[0]: Checkout(*r) for r in rows}

    def forget_environment(self, env: str) -> None:
        self._q("delete from {m}.checkouts where env = ?", [env])
        for table in ("env_views", "environments", "ref_status"):
            self._q(f"delete from {{m}}.{table} where env = ?", [env])

    # -- statuses ---------------------------------------------------------------------------
    def _set_status(
        self, env: str, schema: str, commit: str, status: Status, reason: str, ts: datetime
    ) -> None:
        self._q("delete from {m}.ref_status where env = ?", [env])
        self._q(
            "insert into {m}.ref_status values (?, ?, ?, ?, ?, ?)",
            [env, schema, commit, str(status), reason, ts],
        )

    def set_ref_status(self, env: str, schema: str, commit: str, status: Status, reason: str = "") -> None:
        with self.engine.transaction():
            self._set_status(env, schema, commit, status, reason, now())

    def ref_statuses(self) -> dict[str, RefStatus]:
        rows = self._q("select env, schema_name, commit, status, reason, updated_at from {m}.ref_status")
        return {r[0]: RefStatus(r[0], r[1], r[2], Status(r[3]), r[4], r[5]) for r in rows}

    # -- plans ------------------------------------------------------------------------------
    _ACTIVE = "status in ('open', 'concluding')"

    def claim(self, plan_id: str, plan: Plan, trigger: Trigger, owner: str | None) -> PlanRow:
        """Store `plan` as the claim on its (environment, commit), unless a plan already holds it:
        the row that holds the claim (this one if it was free). A UI run's plan claims nothing: its
        run is under way already, whatever else is."""
        with self.engine.transaction():
            if trigger != Trigger.UI:
                held = self.active_plan(plan.env, plan.commit)
                if held is not None:
                    return held
            ts = now()
            self._q(
                """insert into {m}.plans (plan_id, env, commit, trigger, body, status, reason, created_at,
                       updated_at, owner) values (?, ?, ?, ?, ?, 'open', '', ?, ?, ?)""",
                [plan_id, plan.env, plan.commit, str(trigger), plan.to_json(), ts, ts, owner],
            )
        row = self.plan_row(plan_id)
        assert row is not None
        return row

    def plan(self, plan_id: str) -> Plan | None:
        rows = self._q("select body from {m}.plans where plan_id = ?", [plan_id])
        return Plan.from_json(rows[0][0]) if rows else None

    def plan_row(self, plan_id: str) -> PlanRow | None:
        rows = self._q(f"select {_PLAN_COLUMNS} from {{m}}.plans where plan_id = ?", [plan_id])
        return _plan_row(rows[0]) if rows else None

    def active_plan(self, env: str, commit: str) -> PlanRow | None:
        """The plan that claims `env` at `commit` (open or concluding), if any."""
        rows = self._q(
            f"""select {_PLAN_COLUMNS} from {{m}}.plans where env = ? and commit = ? and {self._ACTIVE}
                and trigger <> ? order by created_at desc limit 1""",
            [env, commit, str(Trigger.UI)],
        )
        if not rows:  # a UI run's plan is awaited too, though it claims nothing
            rows = self._q(
                f"""select {_PLAN_COLUMNS} from {{m}}.plans where env = ? and commit = ? and {self._ACTIVE}
                    order by created_at desc limit 1""",
                [env, commit],
            )
        return _plan_row(rows[0]) if rows else None

    def released_count(self, env: str, commit: str) -> int:
        """How many plans of `env` at `commit` were released (their runs died)."""
        return int(
            self.engine.scalar(
                f"select count(*) from {self.m}.plans where env = ? and commit = ? and status = 'released'",
                [env, commit],
            )
        )

    def active_plan_count(self) -> int:
        return int(self.engine.scalar(f"select count(*) from {self.m}.plans where {self._ACTIVE}"))

    def active_plans(self) -> list[PlanRow]:
        return [
            _plan_row(r) for r in self._q(f"select {_PLAN_COLUMNS} from {{m}}.plans where {self._ACTIVE}")
        ]

    def open_plan_builds(self, max_age: timedelta = timedelta(days=1)) -> set[str]:
        """Every build an active plan (younger than `max_age`) reads or will make: gc keeps them while
        the plan waits for its run."""
        out: set[str] = set()
        rows = self._q(
            f"select body from {{m}}.plans where {self._ACTIVE} and created_at > ?", [now() - max_age]
        )
        for (body,) in rows:
            plan = Plan.from_json(body)
            out |= {m.build.build_id for m in plan.models.values() if m.build is not None}
            out |= {m.base.build_id for m in plan.models.values() if m.base is not None}
        return out

    def _move(self, plan_id: str, to: PlanState, frm: tuple[PlanState, ...], **columns: Any) -> bool:
        """Move a plan from one of the states `frm` to `to`; False if it is in none of them. With
        RETURNING in one statement; without, a read then the update, which is as safe because
        gitops-data processes take turns on the warehouse (the engine's `turns`)."""
        sets = "".join(f", {c} = ?" for c in columns)
        update = (
            f"update {{m}}.plans set status = ?, updated_at = ?{sets} "
            f"where plan_id = ? and {_in('status', list(frm))}"
        )
        params = [str(to), now(), *columns.values(), plan_id, *map(str, frm)]
        if self.engine.capabilities.returning:
            return bool(self._q(update + " returning plan_id", params))
        state = self._q("select status from {m}.plans where plan_id = ?", [plan_id])
        if not state or state[0][0] not in set(map(str, frm)):
            return False
        self._q(update, params)
        return True

    def start_plan(self, plan_id: str, run_id: str, owner: str) -> bool:
        """The run `run_id` (in the process `owner`) executes the open plan; False if it is not open
        (concluded, or released because its run was taken for dead)."""
        return self._move(plan_id, PlanState.OPEN, (PlanState.OPEN,), run_id=run_id, owner=owner)

    def begin_conclusion(self, plan_id: str, owner: str) -> bool:
        """Take an open plan to conclude it; False if another process has (or it is released)."""
        return self._move(plan_id, PlanState.CONCLUDING, (PlanState.OPEN,), owner=owner)

    def conclude_plan(
        self, plan_id: str, outcome: Status, reason: str = "", result: str | None = None
    ) -> None:
        """Record how a plan ended (`result`: the concluded result, for callers that wait)."""
        self._move(
            plan_id,
            PlanState.CONCLUDED,
            (PlanState.OPEN, PlanState.CONCLUDING),
            outcome=str(outcome),
            reason=reason,
            result=result,
        )

    def release_plan(self, plan_id: str, reason: str) -> bool:
        """Give up the claim of a plan whose run died; the next entry point plans the commit again."""
        return self._move(plan_id, PlanState.RELEASED, (PlanState.OPEN, PlanState.CONCLUDING), reason=reason)
