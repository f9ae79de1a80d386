"""Hostile inputs, end to end through the CLI: `gitops-data sync --ref REF` on a warehouse that already
serves SMALL_PROJECT on main.

Every case starts from that published good state (built once per module; each case gets its own copy
of the data repo and of the .duckdb file), applies one bad change (a commit, a bad ref, a broken or
locked warehouse, a fault injected into the build) and runs the CLI in-process (`entry()`, with
sys.argv patched). It must:

1. exit non-zero, with the specific code where one is defined (2 invalid project, 3 blocked,
   4 build failed, 5 warehouse busy, 6 superseded; 1 for other user errors);
2. print `error: ...` without a traceback, naming the file / model / field involved;
3. leave what is published alone: the views of `analytics` (names and definitions), the rows of
   `analytics.b` and `gitops_meta.environments` are exactly as before.

Some inputs are fine and must be accepted (an empty YAML file, awkward branch names, a force-push);
they are separate tests below. Cases that expose a bug are `xfail(strict=True)` with a "BUG:" reason.

The CLI's rich consoles are replaced by wide ones for the test, so long messages are not wrapped
(wrapping would split file names and paths across lines).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

import gitops_data.cli as cli
import gitops_data.engines.duckdb as connection
import gitops_data.orchestration.run as run_module
import gitops_data.warehouse.execute as execute_module
from gitops_data.naming import environment_schema
from gitops_data_tests.conftest import SMALL_PROJECT, DataRepo, init_repo

MAIN_SCHEMA = "analytics"
MODELS = {"nums", "a", "b", "c"}
TALLY: dict[str, list[str]] = {"tried": [], "rejected": []}


# --- the published good state, built once per module ----------------------------------------------


@dataclass(frozen=True)
class Published:
    repo: Path
    warehouse: Path
    dagster_home: Path
    commit: str
    state: dict


def published_state(path: str | Path) -> dict:
    """What consumers see: the views of `analytics`, the rows of `analytics.b`, the environments."""
    con = duckdb.connect(str(path))  # read-write: a killed CLI may have left a WAL to replay
    try:
        views = sorted(
            con.execute(
                "select view_name, sql from duckdb_views() where schema_name = ? and not internal",
                [MAIN_SCHEMA],
            ).fetchall()
        )
        b = sorted(con.execute(f'select * from "{MAIN_SCHEMA}".b').fetchall())
        envs = sorted(con.execute("select * from gitops_meta.environments").fetchall(), key=repr)
    finally:
        con.close()
    return {"views": views, "b": b, "environments": envs}


def main_only(state: dict) -> dict:
    return {**state, "environments": [r for r in state["environments"] if r[0] == "main"]}


def _wide_consoles(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(cli, "console", Console(highlight=False, width=1000))
    mp.setattr(cli, "err", Console(stderr=True, highlight=False, width=1000))


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Published:
    root = tmp_path_factory.mktemp("hostile_good")
    repo = init_repo(root / "repo", SMALL_PROJECT)
    warehouse = root / "warehouse.duckdb"
    home = root / "dagster_home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        mp.delenv("GITOPS_DATA_REPO", raising=False)
        mp.delenv("GITOPS_DATA_WAREHOUSE", raising=False)
        mp.setattr(
            sys,
            "argv",
            ["gitops-data", "--repo", str(repo.path), "--warehouse", str(warehouse), "sync", "--ref", "main"],
        )
        assert cli.entry() == 0
    state = published_state(warehouse)
    assert {v for v, _ in state["views"]} == MODELS
    assert state["b"] == [(1, 20), (2, 40), (3, 60)]
    assert [r[:3] for r in state["environments"]] == [("main", MAIN_SCHEMA, repo.head())]
    return Published(repo.path, warehouse, home, repo.head(), state)


@pytest.fixture(scope="module", autouse=True)
def tally(request):
    yield
    tried, rejected = TALLY["tried"], set(TALLY["rejected"])
    line = (
        f"hostile inputs: {len(tried)} tried, {len(rejected)} rejected cleanly, "
        f"{len(tried) - len(rejected)} not (known bugs, xfail): "
        + ", ".join(t for t in tried if t not in rejected)
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print("\n" + line)


# --- one case: a copy of the good state, the bad change, the CLI ------------------------------------


@dataclass
class Ctx:
    repo: DataRepo
    warehouse: str  # the file the CLI is pointed at
    published: str  # the copy of the good warehouse the checks read afterwards
    tmp: Path
    mp: pytest.MonkeyPatch
    ref: str = "main"
    after_cli: list[Callable[[], None]] = field(default_factory=list)  # undo a fault before the checks

    def settle(self) -> None:
        while self.after_cli:
            self.after_cli.pop()()

    @property
    def pwned(self) -> Path:
        """A file that must never exist: injected SQL tries to write it."""
        return self.tmp / "pwned.csv"


@pytest.fixture
def ctx(published, tmp_path, monkeypatch) -> Ctx:
    shutil.copytree(published.repo, tmp_path / "repo", symlinks=True)
    (tmp_path / "wh").mkdir()
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    shutil.copyfile(published.warehouse, warehouse)
    monkeypatch.setenv("DAGSTER_HOME", str(published.dagster_home))
    monkeypatch.delenv("GITOPS_DATA_REPO", raising=False)
    monkeypatch.delenv("GITOPS_DATA_WAREHOUSE", raising=False)
    _wide_consoles(monkeypatch)
    c = Ctx(DataRepo(tmp_path / "repo"), str(warehouse), str(warehouse), tmp_path, monkeypatch)
    yield c
    c.settle()


def run_cli(ctx: Ctx, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    ctx.mp.setattr(
        sys, "argv", ["gitops-data", "--repo", str(ctx.repo.path), "--warehouse", ctx.warehouse, *args]
    )
    code = cli.entry()
    out, err = capsys.readouterr()
    return code, out, err


def sync(ctx: Ctx, capsys, ref: str | None = None) -> tuple[int, str, str]:
    return run_cli(ctx, capsys, "sync", "--ref", ctx.ref if ref is None else ref)


# --- the changes -------------------------------------------------------------------------------------


def models(body: str) -> str:
    return "models:\n" + body


def add(rel: str, text: str | bytes) -> Callable[[Ctx], None]:
    def change(ctx: Ctx) -> None:
        ctx.repo.write(rel, text)
        ctx.repo.commit(f"add {rel}")

    return change


def extra(body: str) -> Callable[[Ctx], None]:
    """A new extra.yml with these models (a model `x` on line 2, its body from line 3)."""
    return add("extra.yml", models(body))


def edit(old: str, new: str, rel: str = "project.yml") -> Callable[[Ctx], None]:
    def change(ctx: Ctx) -> None:
        ctx.repo.replace(rel, old, new)
        ctx.repo.commit(f"edit {rel}")

    return change


def sql_model(sql: str) -> Callable[[Ctx], None]:
    return extra(f"  - name: x\n    sql: {json.dumps(sql)}\n")


def named(name: str) -> Callable[[Ctx], None]:
    return extra(f"  - name: {json.dumps(name)}\n    sql: select 1 as one\n")


def python_model(source: str) -> Callable[[Ctx], None]:
    def change(ctx: Ctx) -> None:
        ctx.repo.write("extra.yml", models("  - name: p\n    python: models/p.py:model\n"))
        ctx.repo.write("models/p.py", source)
        ctx.repo.commit("python model")

    return change


def symlink(target: str, link: str, yaml: str | None) -> Callable[[Ctx], None]:
    def change(ctx: Ctx) -> None:
        path = ctx.repo.path / link
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
        if yaml is not None:
            ctx.repo.write("extra.yml", yaml)
        ctx.repo.commit("link")
        assert ctx.repo.git("ls-files", "-s", link).startswith("120000")

    return change


def ref(name: str) -> Callable[[Ctx], None]:
    def change(ctx: Ctx) -> None:
        ctx.ref = name

    return change


def git_option_ref(ctx: Ctx) -> None:
    ctx.ref = f"--upload-pack=touch {ctx.pwned}"


def settings_missing(ctx: Ctx) -> None:
    ctx.repo.remove("gitops_data.yaml")
    ctx.repo.commit("no settings")


def tag_ref(ctx: Ctx) -> None:
    ctx.repo.git("tag", "v1")
    ctx.ref = "v1"


def b_changes(ctx: Ctx) -> None:
    """A good commit on main that rebuilds b and c (so that a fault during its build matters)."""
    ctx.repo.replace("project.yml", "v * 2 as v2", "v * 7 as v2")
    ctx.repo.commit("b times 7")


def branch_with_change(ctx: Ctx, name: str = "feature/y") -> None:
    ctx.repo.git("checkout", "-q", "-b", name)
    ctx.repo.replace("project.yml", "v * 2 as v2", "v * 5 as v2")
    ctx.repo.commit("b times 5")
    ctx.repo.git("checkout", "-q", "main")
    ctx.ref = name


def _around_build(ctx: Ctx, before: Callable[[], None]) -> None:
    real = run_module.InProcessExecutor.execute

    def execute(self, plan, *args, **kwargs):
        before()
        return real(self, plan, *args, **kwargs)

    ctx.mp.setattr(run_module.InProcessExecutor, "execute", execute)


def ref_deleted_while_building(ctx: Ctx) -> None:
    branch_with_change(ctx)
    _around_build(ctx, lambda: ctx.repo.git("branch", "-D", "feature/y"))


def ref_moved_while_building(ctx: Ctx) -> None:
    branch_with_change(ctx)
    _around_build(ctx, lambda: ctx.repo.git("branch", "-f", "feature/y", "main"))


def warehouse_unreadable(ctx: Ctx) -> None:
    if os.geteuid() != 0:
        os.chmod(ctx.warehouse, 0)
        ctx.after_cli.append(lambda: os.chmod(ctx.published, 0o644))
        return
    # root reads a chmod-000 file anyway: put a directory where the file should be
    ctx.warehouse = str(ctx.tmp / "wh" / "a_directory.duckdb")
    os.mkdir(ctx.warehouse)


def warehouse_garbage(ctx: Ctx) -> None:
    ctx.warehouse = str(ctx.tmp / "wh" / "garbage.duckdb")
    Path(ctx.warehouse).write_bytes(bytes(range(256)) * 400)


def warehouse_truncated(ctx: Ctx) -> None:
    ctx.warehouse = str(ctx.tmp / "wh" / "truncated.duckdb")
    Path(ctx.warehouse).write_bytes(Path(ctx.published).read_bytes()[:20_000])


def warehouse_under_a_file(ctx: Ctx) -> None:
    (ctx.tmp / "not_a_dir").write_text("x")
    ctx.warehouse = str(ctx.tmp / "not_a_dir" / "warehouse.duckdb")


def _no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


def disk_full_on_connect(ctx: Ctx) -> None:
    b_changes(ctx)
    ctx.mp.setattr(connection, "_connect", _no_space)


def disk_full_while_writing_a_build(ctx: Ctx) -> None:
    b_changes(ctx)
    ctx.mp.setattr(execute_module, "write_build", _no_space)


LOCK_HOLDER = """
import sys
from gitops_data.engines.duckdb import warehouse_lock
with warehouse_lock(sys.argv[1], 30):
    print("locked", flush=True)
    sys.stdin.read()
"""


def warehouse_locked(ctx: Ctx) -> None:
    b_changes(ctx)
    child = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, ctx.warehouse],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def release() -> None:
        child.stdin.close()
        child.wait(10)

    ctx.after_cli.append(release)
    assert child.stdout.readline().strip() == "locked"
    ctx.mp.setenv("GITOPS_DATA_LOCK_TIMEOUT", "1")  # read at each connect


def type_injection_in_cast(ctx: Ctx) -> None:
    """A seed column type closes the CAST of builder.with_casts and appends its own statements."""
    payload = (
        'bigint) as "id") from (select 1 as "id"); drop view analytics.c; '
        f"copy (select 42 as x) to '{ctx.pwned}'; --"
    )
    ctx.repo.replace(
        "project.yml",
        "    path: seeds/nums.csv\n",
        "    path: seeds/nums.csv\n    columns:\n      id: {type: "
        + "'"
        + payload.replace("'", "''")
        + "'}\n",
    )
    ctx.repo.commit("inject through a seed column type")


def type_injection_in_type_check(ctx: Ctx) -> None:
    """A model column type closes the `typeof(cast(null as <type>))` of the type check."""
    payload = f"bigint)) as t; drop view analytics.c; copy (select 42 as x) to '{ctx.pwned}'; select ((1"
    ctx.repo.replace("project.yml", "id: {type: bigint,", "id: {type: '" + payload.replace("'", "''") + "',")
    ctx.repo.commit("inject through a column type")


# --- the table -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    id: str
    change: Callable[[Ctx], None]
    code: int | frozenset[int]
    names: tuple[str, ...]  # stderr must contain each of these


X = "extra.yml"
X2, X3, X4 = "extra.yml:2 [x]", "extra.yml:3 [x]", "extra.yml:4 [x]"
BAD_NAMES = {
    "name_sql_injection": 'x"; drop table y; --',
    "name_double_quotes": '"quoted"',
    "name_single_quote": "o'brien",
    "name_space": "with space",
    "name_unicode": "fëature",
    "name_cyrillic_lookalike": "\u0430ccounts",
    "name_reserved_word": "select",
    "name_64_chars": "m" * 64,
    "name_rich_markup": "[bold]x[/bold]",
}

CASES = [
    # YAML that is not what it should be
    Bad("malformed_yaml", extra("  - name: x\n\tsql: select 1\n"), 2, ("extra.yml:3", "YAML syntax error")),
    Bad(
        "malformed_project_yml", edit("  - name: c\n", "  - name: c\n  oops: [\n"), 2, ("project.yml", "YAML")
    ),
    Bad(
        "duplicate_yaml_key",
        extra("  - name: x\n    sql: select 1\n    sql: select 2\n"),
        2,
        ("extra.yml:4", "duplicate key 'sql'"),
    ),
    Bad("wrong_type_tags", extra("  - name: x\n    sql: select 1\n    tags: 5\n"), 2, (X4, "tags:")),
    Bad(
        "wrong_type_columns_list",
        extra("  - name: x\n    sql: select 1 as a\n    columns: [a]\n"),
        2,
        (X4, "columns:"),
    ),
    Bad(
        "wrong_type_unique",
        edit("unique: true", "unique: maybe"),
        2,
        ("project.yml", "[a]", "columns.id.unique"),
    ),
    Bad(
        "unknown_key",
        extra("  - name: x\n    sql: select 1\n    colums: {}\n"),
        2,
        (X4, "unknown key 'colums'"),
    ),
    Bad(
        "unknown_top_level_key",
        add(X, "modles:\n  - name: x\n    sql: select 1\n"),
        2,
        ("extra.yml:1", "'modles'", "did you mean 'models'"),
    ),
    Bad(
        "top_level_list",
        add(X, "- name: x\n  sql: select 1\n"),
        2,
        ("extra.yml:1", "top level must be a mapping"),
    ),
    Bad("empty_sql", extra("  - name: x\n    sql: ''\n"), 2, (X3, "SQL is empty")),
    Bad("null_sql", extra("  - name: x\n    sql:\n"), 2, (X2, "exactly one of `sql`")),
    Bad("blank_sql", extra("  - name: x\n    sql: '   \n\n   '\n"), 2, (X3, "SQL is empty")),
    Bad(
        "huge_yaml_file",
        add(
            X,
            "models:\n"
            + "".join(
                f"  - name: m{i}\n    description: {'x' * 80}\n    sql: select 1\n" for i in range(40_000)
            ),
        ),
        2,
        (X, "YAML files are limited to 5000000 bytes"),
    ),
    Bad(
        "not_utf8_yaml",
        add(X, b"models:\n  - name: x\n    description: caf\xe9\n    sql: select 1\n"),
        2,
        (X, "invalid continuation byte"),
    ),
    Bad("nul_byte_in_yaml", add(X, b"models:\n  - name: x\x00\n    sql: select 1\n"), 2, (X, "#x0000")),
    Bad(
        "settings_malformed",
        add("gitops_data.yaml", "name: [t\n"),
        2,
        ("gitops_data.yaml", "YAML syntax error"),
    ),
    Bad(
        "settings_external_is_internal",
        add("gitops_data.yaml", "name: t\nexternal_schema: gitops_internal\n"),
        2,
        ("gitops_data.yaml", "must all differ"),
    ),
    Bad(
        "settings_schema_injection",
        add("gitops_data.yaml", "name: t\nexternal_schema: 'a\"; drop schema x; --'\n"),
        2,
        ("gitops_data.yaml:2", "external_schema"),
    ),
    Bad("settings_missing", settings_missing, 2, ("gitops_data.yaml is missing",)),
    # names
    *[Bad(k, named(v), 2, ("extra.yml:2", "name " + repr(v))) for k, v in BAD_NAMES.items()],
    Bad(
        "name_differs_only_in_case",
        extra("  - name: B\n    sql: select 1\n"),
        2,
        ("project.yml:", "extra.yml:2", "duplicate name"),
    ),
    # paths that leave the repository
    Bad(
        "source_path_dotdot",
        add(X, "sources:\n  - name: s\n    path: ../../etc/passwd\n"),
        2,
        ("extra.yml:3 [s]", "points outside the repository"),
    ),
    Bad(
        "source_path_absolute",
        add(X, "sources:\n  - name: s\n    path: /etc/passwd\n    format: csv\n"),
        2,
        ("extra.yml:3 [s]", "is absolute"),
    ),
    Bad(
        "sql_file_outside",
        extra("  - name: x\n    sql_file: ../../../etc/passwd\n"),
        2,
        (X3, "points outside the repository"),
    ),
    Bad(
        "python_file_outside",
        extra("  - name: x\n    python: ../../outside.py:model\n"),
        2,
        (X3, "points outside the repository"),
    ),
    Bad(
        "seed_symlink_leaving_repo",
        symlink("/etc/passwd", "seeds/leak.csv", "seeds:\n  - name: leak\n    path: seeds/leak.csv\n"),
        2,
        ("extra.yml:3 [leak]", "symbolic link"),
    ),
    Bad(
        "yaml_symlink_leaving_repo",
        symlink("/etc/passwd", "evil.yml", None),
        2,
        ("evil.yml", "symbolic link"),
    ),
    Bad(
        "directory_symlink_leaving_repo",
        symlink("/etc", "etc", "sources:\n  - name: s\n    path: etc/passwd\n    format: csv\n"),
        2,
        ("extra.yml:3 [s]", "symbolic link"),
    ),
    # SQL that is not one plain query over the project
    Bad("sql_syntax_error", sql_model("select (1 from nums"), 2, (X3, "cannot parse SQL")),
    Bad("sql_two_statements", sql_model("select 1; select 2"), 2, (X3, "found 2 statements")),
    Bad(
        "sql_query_then_drop", sql_model("select * from nums; drop table nums"), 2, (X3, "found 2 statements")
    ),
    Bad("sql_drop", sql_model("drop table gitops_meta.environments"), 2, (X3, "found DROP")),
    Bad("sql_attach", sql_model("attach 'x' as y"), 2, (X3, "found ATTACH")),
    Bad("sql_copy_to_file", sql_model("copy (select 1) to 'x.csv'"), 2, (X3, "found COPY")),
    Bad("sql_install_extension", sql_model("install httpfs"), 2, (X3, "found INSTALL")),
    Bad("sql_pragma", sql_model("pragma database_list"), 2, (X3, "found PRAGMA")),
    Bad("sql_set", sql_model("set threads = 1"), 2, (X3, "found SET")),
    Bad("sql_create_table_as", sql_model("create table y as select 1"), 2, (X3, "found CREATE")),
    Bad(
        "sql_reads_file_by_name",
        sql_model("select * from 'data.csv'"),
        2,
        (X2, "unknown reference 'data.csv'"),
    ),
    Bad(
        "sql_reads_seed_file_by_name",
        sql_model("select * from 'seeds/nums.csv'"),
        2,
        (X2, "unknown reference 'seeds/nums.csv'"),
    ),
    Bad("sql_read_csv", sql_model("select * from read_csv('seeds/nums.csv')"), 2, (X3, "is not allowed")),
    Bad(
        "sql_read_text_in_subquery",
        sql_model("select (select content from read_text('/etc/passwd')) as t"),
        2,
        (X3, "is not allowed"),
    ),
    Bad("sql_getenv", sql_model("select getenv('HOME') as h"), 2, (X3, "getenv() is not allowed")),
    Bad(
        "sql_reads_catalog",
        sql_model("select * from gitops_meta.environments"),
        2,
        (X3, "qualified name 'gitops_meta.environments'"),
    ),
    Bad(
        "sql_reads_internal_build",
        sql_model("select * from gitops_internal.whatever"),
        2,
        (X3, "qualified name"),
    ),
    Bad(
        "cycle",
        extra("  - name: x\n    sql: select * from y\n  - name: y\n    sql: select * from x\n"),
        2,
        (X2, "dependency cycle: x -> y -> x"),
    ),
    Bad(
        "cycle_through_published_model",
        edit("select id, v from nums", "select id, v from c"),
        2,
        ("project.yml", "dependency cycle"),
    ),
    Bad("self_reference", sql_model("select * from X"), 2, (X2, "model references itself")),
    Bad(
        "unknown_reference",
        sql_model("select * from bb"),
        2,
        (X2, "unknown reference 'bb'; did you mean 'b'?"),
    ),
    # found by the static column analysis, before anything builds
    Bad(
        "sql_unknown_column",
        edit("select id, v * 2 as v2 from a", "select id, nope * 2 as v2 from a"),
        2,
        ("project.yml:12 [b]", "column 'nope' is not in a (columns: id, v)"),
    ),
    # valid for sqlglot, refused by DuckDB at build time
    Bad("sql_unknown_function", sql_model("select no_such_fn(id) as z from a"), 4, ("'x'", "no_such_fn")),
    Bad("sql_runtime_error", sql_model("select cast('abc' as integer) as z from a"), 4, ("'x'", "abc")),
    # Python models that misbehave
    Bad(
        "python_raises",
        python_model("def model(b):\n    raise ValueError('boom in model')\n"),
        4,
        ("'p'", "models/p.py", "boom in model"),
    ),
    Bad(
        "python_returns_dict",
        python_model("def model(b):\n    return {'a': 1}\n"),
        4,
        ("'p'", "returned dict"),
    ),
    Bad(
        "python_returns_no_columns",
        python_model("import polars as pl\n\n\ndef model(b):\n    return pl.DataFrame()\n"),
        4,
        ("'p'", "no columns"),
    ),
    Bad(
        "python_import_fails",
        python_model("raise RuntimeError('at import')\n\n\ndef model(b):\n    return b\n"),
        4,
        ("models/p.py", "'p'", "at import"),
    ),
    Bad(
        "python_lazy_frame_fails",
        python_model("import polars as pl\n\n\ndef model(b):\n    return b.select(pl.col('nope'))\n"),
        4,
        ("'p'", "nope"),
    ),
    Bad(
        "python_calls_sys_exit",
        python_model("import sys\n\n\ndef model(b):\n    sys.exit(3)\n"),
        4,
        ("python model 'p'", "SystemExit"),
    ),
    # checks that cannot pass
    Bad(
        "check_on_missing_column",
        extra(
            "  - name: x\n    sql: select id from b\n    columns:\n"
            "      'x\"; drop table y; --': {nullable: false}\n"
        ),
        2,
        ("extra.yml:5 [x]", "the query has no column 'x\"; drop table y; --'"),
    ),
    Bad(
        "check_expression_unparseable",
        extra("  - name: x\n    sql: select id from b\n    checks:\n      - expression: 'id >'\n"),
        2,
        (X, "[x]"),
    ),
    # nesting that blows Python's stack
    Bad("deeply_nested_yaml", add(X, "models: " + "[" * 1000 + "]" * 1000 + "\n"), 2, (X,)),
    Bad("deeply_nested_sql", sql_model("select " + "(" * 2000 + "1" + ")" * 2000 + " as v"), 2, (X3,)),
    # column types are pasted into SQL
    Bad("type_injection_in_cast", type_injection_in_cast, 2, ("project.yml", "[nums]", "type")),
    Bad("type_injection_in_type_check", type_injection_in_type_check, 2, ("project.yml", "[a]", "type")),
    # refs
    Bad("ref_does_not_exist", ref("nope"), 1, ("ref 'nope' does not exist",)),
    Bad("ref_starts_with_dash", ref("-x"), 1, ("invalid ref '-x'",)),
    Bad("ref_is_a_git_option", git_option_ref, 1, ("invalid ref '--upload-pack",)),
    Bad("ref_empty", ref(""), 1, ("invalid ref ''",)),
    Bad("ref_with_control_chars", ref("main\n\x1b[31mred"), 1, ("does not exist",)),
    Bad("ref_range", ref("main..main"), 1, ("ref 'main..main' does not exist",)),
    Bad("ref_is_a_tag", tag_ref, 1, ("'v1' is not a branch",)),
    Bad("ref_deleted_while_building", ref_deleted_while_building, frozenset({1, 6}), ("feature/y",)),
    Bad("ref_moved_while_building", ref_moved_while_building, 6, ("feature/y moved past",)),
    # the warehouse
    Bad("warehouse_unreadable", warehouse_unreadable, 1, ("cannot open warehouse",)),
    Bad(
        "warehouse_garbage_bytes",
        warehouse_garbage,
        1,
        ("garbage.duckdb", "not a valid DuckDB database file"),
    ),
    Bad("warehouse_truncated", warehouse_truncated, 1, ("truncated.duckdb",)),
    Bad("warehouse_parent_is_a_file", warehouse_under_a_file, 1, ("not_a_dir",)),
    Bad("disk_full_on_connect", disk_full_on_connect, 1, ("No space left on device",)),
    Bad(
        "disk_full_while_writing_a_build",
        disk_full_while_writing_a_build,
        4,
        ("model 'b'", "No space left on device"),
    ),
    Bad("warehouse_locked_by_another_process", warehouse_locked, 5, ("stayed locked",)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_rejected_and_nothing_published_changes(
    case: Bad, ctx: Ctx, published: Published, capsys
):
    TALLY["tried"].append(case.id)
    case.change(ctx)
    code, out, err = sync(ctx, capsys)
    ctx.settle()

    # first what matters most: nothing published changed, nothing was written outside the warehouse
    assert not ctx.pwned.exists(), f"injected SQL wrote {ctx.pwned}\nstdout:\n{out}\nstderr:\n{err}"
    assert published_state(ctx.published) == published.state, f"stdout:\n{out}\nstderr:\n{err}"
    allowed = case.code if isinstance(case.code, frozenset) else {case.code}
    assert code in allowed, f"exit {code}, wanted {sorted(allowed)}\nstdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in out + err, err
    assert "error:" in err, err
    for name in case.names:
        assert name in err, f"{name!r} not in stderr:\n{err}"
    TALLY["rejected"].append(case.id)


YAML_BOMB_LEVELS = 8  # 10**8 scalars from a 700-byte file


def _yaml_bomb() -> str:
    lines = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, YAML_BOMB_LEVELS + 1)]
    return (
        models("  - name: x\n    sql: select 'a' as v\n    meta:\n")
        + "".join(f"      {line}\n" for line in lines)
        + f"    columns:\n      v:\n        checks:\n          - isin: *l{YAML_BOMB_LEVELS}\n"
    )


SYNC_SCRIPT = (
    "import sys\nfrom gitops_data.cli import cli_main\n"
    "sys.argv = ['gitops-data', *sys.argv[1:]]\ncli_main()\n"
)


def test_yaml_alias_bomb_is_rejected_quickly(ctx: Ctx, published: Published):
    """Run in a child process: today it does not finish, so it is killed after a deadline."""
    TALLY["tried"].append("yaml_alias_bomb")
    ctx.repo.write(X, _yaml_bomb())
    ctx.repo.commit("bomb")
    env = {**os.environ, "DAGSTER_HOME": str(ctx.tmp / "dagster_home"), "COLUMNS": "1000", "NO_COLOR": "1"}
    t0 = time.monotonic()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SYNC_SCRIPT,
            "--repo",
            str(ctx.repo.path),
            "--warehouse",
            ctx.warehouse,
            "sync",
            "--ref",
            "main",
        ],
        cwd=ctx.tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, 9)
        child.communicate()
        out, err = "", ""
    assert published_state(ctx.published) == published.state
    assert child.returncode == 2, (
        f"exit {child.returncode} after {time.monotonic() - t0:.0f}s (killed at 15s)"
    )
    assert "Traceback" not in out + err
    assert "extra.yml" in err
    TALLY["rejected"].append("yaml_alias_bomb")


# --- inputs that look odd but are fine ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "# nothing here yet\n", "---\n", "models:\n", "models: []\n"],
    ids=["empty", "comment_only", "document_marker", "empty_section", "empty_list"],
)
def test_empty_yaml_file_is_fine(text: str, ctx: Ctx, published: Published, capsys):
    """An empty YAML file is not an error: exit 0, the new commit is published, no view changes."""
    ctx.repo.write(X, text)
    head = ctx.repo.commit("empty file")
    code, out, err = sync(ctx, capsys)
    assert code == 0, out + err
    assert "Traceback" not in out + err
    after = published_state(ctx.warehouse)
    assert after["views"] == published.state["views"]
    assert after["b"] == published.state["b"]
    assert [r[:3] for r in after["environments"]] == [("main", MAIN_SCHEMA, head)]


def _views(path: str, schema: str) -> dict[str, str]:
    con = duckdb.connect(path, read_only=True)
    try:
        return dict(
            con.execute(
                "select view_name, sql from duckdb_views() where schema_name = ? and not internal", [schema]
            ).fetchall()
        )
    finally:
        con.close()


def test_awkward_branch_names_get_distinct_schemas_and_leave_main_alone(
    ctx: Ctx, published: Published, capsys
):
    branches = ["feature/x", "a.b", "ünïcode", "feature-x", "Feature/X", "feature_x"]
    for name in branches:
        ctx.repo.git("branch", name)
    # feature-x differs from feature/x, so the two schemas also serve different data
    ctx.repo.git("checkout", "-q", "feature-x")
    ctx.repo.replace("project.yml", "v * 2 as v2", "v * 3 as v2")
    ctx.repo.commit("feature-x: b times 3")
    ctx.repo.git("checkout", "-q", "main")

    schemas = {}
    for name in branches:
        code, out, err = sync(ctx, capsys, name)
        assert code == 0, f"{name}: {out}{err}"
        assert "Traceback" not in out + err
        schemas[name] = environment_schema(MAIN_SCHEMA, name, "main")
        assert f"to schema {schemas[name]}" in out, out
    assert len(set(schemas.values())) == len(branches), schemas
    assert MAIN_SCHEMA not in schemas.values()
    for name, schema in schemas.items():
        assert set(_views(ctx.warehouse, schema)) == MODELS, (name, schema)
    con = duckdb.connect(ctx.warehouse, read_only=True)
    try:
        b_x = con.execute(f'select * from "{schemas["feature/x"]}".b order by id').fetchall()
        b_dash = con.execute(f'select * from "{schemas["feature-x"]}".b order by id').fetchall()
        envs = dict(con.execute("select env, schema_name from gitops_meta.environments").fetchall())
    finally:
        con.close()
    assert b_x == [(1, 20), (2, 40), (3, 60)]
    assert b_dash == [(1, 30), (2, 60), (3, 90)]
    assert envs == {**schemas, "main": MAIN_SCHEMA}
    assert main_only(published_state(ctx.warehouse)) == published.state


def test_force_push_to_an_older_commit_publishes_it_cleanly(ctx: Ctx, published: Published, capsys):
    ctx.repo.replace("project.yml", "v * 2 as v2", "v * 3 as v2")
    newer = ctx.repo.commit("b times 3")
    code, out, err = sync(ctx, capsys)
    assert code == 0, out + err
    state = published_state(ctx.warehouse)
    assert state["b"] == [(1, 30), (2, 60), (3, 90)]
    assert [r[:3] for r in state["environments"]] == [("main", MAIN_SCHEMA, newer)]

    ctx.repo.git("reset", "-q", "--hard", "HEAD~1")
    assert ctx.repo.head() == published.commit
    code, out, err = sync(ctx, capsys)
    assert code == 0, out + err
    assert "Traceback" not in out + err
    assert f"published main @ {published.commit[:10]}" in out, out
    state = published_state(ctx.warehouse)
    assert state["views"] == published.state["views"]
    assert state["b"] == published.state["b"]
    assert [r[:3] for r in state["environments"]] == [("main", MAIN_SCHEMA, published.commit)]
    # and a rerun is a no-op
    code, out, err = sync(ctx, capsys)
    assert code == 0 and "nothing to do" in out, out + err
