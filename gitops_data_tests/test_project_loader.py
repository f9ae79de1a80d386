"""Validation of bad projects: every problem is a ProjectError issue with file, line, model and message.

Each case is loaded twice, from the folder (DirTree, what `validate PATH` reads) and from the commit
(GitTree, what builds read), and must give exactly the expected issues in both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from gitops_data.errors import Issue, ProjectError
from gitops_data.project.loader import load_project
from gitops_data.project.tree import DirTree, GitTree

BASE = {
    "gitops_data.yaml": "name: t\n",
    "seeds/nums.csv": "id,v\n1,10\n2,20\n",
    # line numbers below are relied on: nums is declared on line 2, m0 on line 5
    "base.yml": (
        "seeds:\n"
        "  - name: nums\n"
        "    path: seeds/nums.csv\n"
        "models:\n"
        "  - name: m0\n"
        "    sql: select id, v from nums\n"
    ),
}


@dataclass(frozen=True)
class Want:
    file: str
    line: int | None
    model: str | None
    text: str


@dataclass
class Case:
    id: str
    files: dict[str, str | None]  # merged over BASE; None removes a BASE file
    want: list[Want] = field(default_factory=list)


def _models(body: str) -> str:
    return "models:\n" + body


CASES = [
    Case(
        "yaml_syntax",
        {
            "extra.yml": _models(
                "  - name: x\n    sql: select 1\n  - name: y\n\tsql: select 2\n"
                "  - name: z\n    sql: select 3\n"
            )
        },
        [Want("extra.yml", 5, None, "YAML syntax error: while scanning for the next token")],
    ),
    Case(
        "yaml_duplicate_key",
        {"extra.yml": _models("  - name: x\n    sql: select 1\n    sql: select 2\n")},
        [Want("extra.yml", 4, None, "duplicate key 'sql'")],
    ),
    Case(
        "unknown_key",
        {"extra.yml": _models("  - name: x\n    sql: select 1\n    colums: {}\n")},
        [Want("extra.yml", 4, "x", "unknown key 'colums'")],
    ),
    Case(
        "unknown_key_in_column",
        {
            "extra.yml": _models(
                "  - name: x\n    sql: select 1 as c\n    columns:\n      c:\n        typ: int\n"
            )
        },
        [Want("extra.yml", 6, "x", "columns.c: unknown key 'typ'")],
    ),
    Case(
        "missing_name",
        {"extra.yml": _models("  - sql: select 1\n")},
        [Want("extra.yml", 2, None, "missing required key 'name'")],
    ),
    Case(
        "model_without_body",
        {"extra.yml": _models("  - name: x\n    description: nothing to run\n")},
        [Want("extra.yml", 2, "x", "exactly one of `sql`, `sql_file` or `python` (got none)")],
    ),
    Case(
        "model_with_two_bodies",
        {"extra.yml": _models("  - name: x\n    sql: select 1\n    python: models/p.py:f\n")},
        [Want("extra.yml", 2, "x", "exactly one of `sql`, `sql_file` or `python` (got sql, python)")],
    ),
    Case(
        "model_with_sql_and_sql_file",
        {"extra.yml": _models("  - name: x\n    sql: select 1\n    sql_file: x.sql\n")},
        [Want("extra.yml", 2, "x", "(got sql, sql_file)")],
    ),
    Case(
        "duplicate_name_across_files",
        {"extra.yml": _models("  - name: m0\n    sql: select 2 as x\n")},
        [Want("extra.yml", 2, "m0", "duplicate name 'm0': also declared at base.yml:5")],
    ),
    Case(
        "duplicate_name_differs_in_case",
        {"extra.yml": "sources:\n  - name: NUMS\n    path: seeds/nums.csv\n"},
        [Want("extra.yml", 2, "NUMS", "duplicate name 'NUMS': also declared at base.yml:2")],
    ),
    Case(
        "unknown_reference_with_hint",
        {"extra.yml": _models("  - name: x\n    sql: select * from numz\n")},
        [Want("extra.yml", 2, "x", "unknown reference 'numz'; did you mean 'nums'?")],
    ),
    Case(
        "unknown_python_input_with_hint",
        {
            "extra.yml": _models("  - name: x\n    python: models/p.py:model\n"),
            "models/p.py": "def model(numz):\n    return numz\n",
        },
        [Want("extra.yml", 2, "x", "unknown input 'numz'; did you mean 'nums'?")],
    ),
    Case(
        "dependency_cycle",
        {
            "extra.yml": _models(
                "  - name: a\n    sql: select * from b\n  - name: b\n    sql: select * from a\n"
            )
        },
        [Want("extra.yml", 2, "a", "dependency cycle: a -> b -> a")],
    ),
    Case(
        "three_model_cycle",
        {
            "extra.yml": _models(
                "  - name: a\n    sql: select * from c\n  - name: b\n    sql: select * from a\n"
                "  - name: c\n    sql: select * from b\n"
            )
        },
        [Want("extra.yml", 2, "a", "dependency cycle: a -> c -> b -> a")],
    ),
    Case(
        "self_reference",
        {"extra.yml": _models("  - name: x\n    sql: select * from X\n")},
        [Want("extra.yml", 2, "x", "model references itself")],
    ),
    Case(
        "sql_does_not_parse",
        {"extra.yml": _models("  - name: x\n    sql: select (1 from nums\n")},
        [Want("extra.yml", 3, "x", "cannot parse SQL")],
    ),
    Case(
        "sql_error_on_the_second_line_of_a_block",
        {"extra.yml": _models("  - name: x\n    sql: |\n      select id\n      from nums where\n")},
        [Want("extra.yml", 5, "x", "WHERE needs a condition")],
    ),
    Case(
        "sql_typo_in_the_first_word",
        {"extra.yml": _models("  - name: x\n    sql: selct id from nums\n")},
        [Want("extra.yml", 3, "x", "a query starts with SELECT, WITH, FROM or VALUES, not 'selct'")],
    ),
    Case(
        "sql_two_statements",
        {"extra.yml": _models("  - name: x\n    sql: select 1; select 2\n")},
        [Want("extra.yml", 3, "x", "exactly one query; found 2 statements")],
    ),
    Case(
        "sql_ddl",
        {"extra.yml": _models("  - name: x\n    sql: drop table nums\n")},
        [Want("extra.yml", 3, "x", "must be a query (SELECT ...); found DROP")],
    ),
    Case(
        "sql_insert",
        {"extra.yml": _models("  - name: x\n    sql: insert into nums select 1, 2\n")},
        [Want("extra.yml", 3, "x", "found INSERT")],
    ),
    Case(
        "sql_read_csv",
        {"extra.yml": _models("  - name: x\n    sql: \"select * from read_csv('/etc/passwd')\"\n")},
        [Want("extra.yml", 3, "x", "table function \"READ_CSV('/etc/passwd')\" is not allowed")],
    ),
    Case(
        "sql_read_text_in_subquery",
        {
            "extra.yml": _models(
                "  - name: x\n    sql: \"select (select count(*) from read_text('/etc/passwd')) as n\"\n"
            )
        },
        [Want("extra.yml", 3, "x", "is not allowed")],
    ),
    Case(
        "sql_getenv",
        {"extra.yml": _models("  - name: x\n    sql: \"select getenv('HOME') as h\"\n")},
        [Want("extra.yml", 3, "x", "function getenv() is not allowed")],
    ),
    Case(
        "sql_qualified_name",
        {"extra.yml": _models("  - name: x\n    sql: select * from other.db.t\n")},
        [Want("extra.yml", 3, "x", "qualified name 'other.db.t'")],
    ),
    Case(
        "sql_file_with_bad_sql",
        {
            "extra.yml": _models("  - name: x\n    sql_file: models/x.sql\n"),
            "models/x.sql": "-- two\nselect 1;\nselect 2\n",
        },
        [Want("models/x.sql", None, "x", "found 2 statements")],
    ),
    Case(
        "sql_file_missing",
        {"extra.yml": _models("  - name: x\n    sql_file: models/nope.sql\n")},
        [Want("extra.yml", 3, "x", "sql_file: file 'models/nope.sql' does not exist")],
    ),
    Case(
        "sql_file_outside_repo",
        {"extra.yml": _models("  - name: x\n    sql_file: ../secret.sql\n")},
        [Want("extra.yml", 3, "x", "points outside the repository")],
    ),
    Case(
        "python_function_missing",
        {
            "extra.yml": _models("  - name: x\n    python: models/p.py:mdl\n"),
            "models/p.py": "def model(nums):\n    return nums\n",
        },
        [Want("extra.yml", 3, "x", "models/p.py has no top-level function 'mdl'; did you mean 'model'?")],
    ),
    Case(
        "python_file_missing",
        {"extra.yml": _models("  - name: x\n    python: models/nope.py:model\n")},
        [Want("extra.yml", 3, "x", "python: file 'models/nope.py' does not exist")],
    ),
    Case(
        "python_entry_without_function",
        {
            "extra.yml": _models("  - name: x\n    python: models/p.py\n"),
            "models/p.py": "def x(nums):\n    return nums\n",
        },
        [Want("extra.yml", 3, "x", "must look like 'path/to/file.py:function'")],
    ),
    Case(
        "python_syntax_error",
        {
            "extra.yml": _models("  - name: x\n    python: models/p.py:model\n"),
            "models/p.py": "import polars\n\ndef model(nums)\n    return nums\n",
        },
        [Want("models/p.py", 3, "x", "Python syntax error")],
    ),
    Case(
        "python_varargs",
        {
            "extra.yml": _models("  - name: x\n    python: models/p.py:model\n"),
            "models/p.py": "\n\ndef model(nums, **rest):\n    return nums\n",
        },
        [Want("models/p.py", 3, "x", "may not take *args/**kwargs")],
    ),
    Case(
        "source_path_outside_repo",
        {"extra.yml": "sources:\n  - name: s\n    path: ../../etc/passwd\n"},
        [Want("extra.yml", 3, "s", "path '../../etc/passwd' points outside the repository")],
    ),
    Case(
        "source_path_absolute",
        {"extra.yml": "sources:\n  - name: s\n    path: /etc/passwd\n"},
        [Want("extra.yml", 3, "s", "is absolute")],
    ),
    Case(
        "source_path_sneaky_dotdot",
        {"extra.yml": "sources:\n  - name: s\n    path: seeds/../../x.csv\n"},
        [Want("extra.yml", 3, "s", "points outside the repository")],
    ),
    Case(
        "source_path_missing_file",
        {"extra.yml": "sources:\n  - name: s\n    path: data/nope.csv\n"},
        [Want("extra.yml", 3, "s", "file 'data/nope.csv' does not exist in the repository")],
    ),
    Case(
        "source_without_location",
        {"extra.yml": "sources:\n  - name: s\n    description: where?\n"},
        [Want("extra.yml", 2, "s", "exactly one of `path` (a file in the repo) or `table`")],
    ),
    Case(
        "source_bad_table_name",
        {"extra.yml": "sources:\n  - name: s\n    table: a.b.c.d\n"},
        [Want("extra.yml", 3, "s", "must be [catalog.][schema.]table")],
    ),
    Case(
        "check_ge_with_list",
        {
            "extra.yml": _models(
                "  - name: x\n    sql: select 1 as v\n    columns:\n      v:\n"
                "        checks:\n          - {ge: [1, 2]}\n"
            )
        },
        [Want("extra.yml", 7, "x", "columns.v.checks.0: ge takes one value")],
    ),
    Case(
        "check_unknown_kind",
        {
            "extra.yml": _models(
                "  - name: x\n    sql: select 1 as v\n    columns:\n      v:\n        checks:\n"
                "          - {ge: 0}\n          - {foo: 1}\n"
            )
        },
        [Want("extra.yml", 8, "x", "columns.v.checks.1: unknown check 'foo'; expected one of: between, ge,")],
    ),
    Case(
        "check_bad_regex",
        {
            "extra.yml": _models(
                "  - name: x\n    sql: select 'a' as v\n    columns:\n"
                "      v:\n        checks: [{str_matches: '('}]\n"
            )
        },
        [Want("extra.yml", 6, "x", "invalid regular expression")],
    ),
    Case(
        "model_check_two_kinds",
        {
            "extra.yml": _models(
                "  - name: x\n    sql: select 1 as v\n    checks:\n"
                "      - {not_empty: true, row_count: {min: 1}}\n"
            )
        },
        [Want("extra.yml", 5, "x", "a check names exactly one kind")],
    ),
    Case(
        "relationship_to_unknown_model",
        {
            "extra.yml": _models(
                "  - name: x\n    sql: select 1 as v\n    checks:\n"
                "      - relationship: {column: v, to: nope}\n"
            )
        },
        [Want("extra.yml", 2, "x", "checks: relationship reads unknown model 'nope'")],
    ),
    Case(
        "unknown_top_level_key_with_hint",
        {"extra.yml": "seed:\n  - name: x\n    path: seeds/nums.csv\n"},
        [Want("extra.yml", 1, None, "unknown top-level key 'seed'; did you mean 'seeds'?")],
    ),
    Case(
        "unknown_top_level_key_without_hint",
        {"extra.yml": "# a comment\nwhatever: 1\n"},
        [Want("extra.yml", 2, None, "unknown top-level key 'whatever' (expected sources, seeds, models")],
    ),
    Case(
        "top_level_list",
        {"extra.yml": "- name: x\n"},
        [Want("extra.yml", 1, None, "top level must be a mapping")],
    ),
    Case(
        "section_not_a_list",
        {"extra.yml": "\nmodels: {name: x}\n"},
        [Want("extra.yml", 2, None, "`models` must be a list")],
    ),
    Case(
        "missing_settings_file",
        {"gitops_data.yaml": None},
        [Want("gitops_data.yaml", None, None, "gitops_data.yaml is missing at the repository root")],
    ),
    Case(
        "settings_unknown_key",
        {"gitops_data.yaml": "name: t\nextrnal_schema: x\n"},
        [Want("gitops_data.yaml", 2, None, "unknown key 'extrnal_schema'")],
    ),
    Case(
        "settings_bad_schema_name",
        {"gitops_data.yaml": "name: t\n\nexternal_schema: 'my schema'\n"},
        [Want("gitops_data.yaml", 3, None, "external_schema 'my schema' may only contain")],
    ),
    Case(
        "wrong_type_tags",
        {"extra.yml": _models("  - name: x\n    sql: select 1\n    tags: 5\n")},
        [Want("extra.yml", 4, "x", "tags: Input should be a valid list")],
    ),
    Case(
        "wrong_type_unique",
        {
            "extra.yml": _models(
                "  - name: x\n    sql: select 1 as c\n    columns:\n      c: {unique: maybe}\n"
            )
        },
        [Want("extra.yml", 5, "x", "columns.c.unique: Input should be a valid boolean")],
    ),
    Case(
        "schedule_selects_unknown_model",
        {"extra.yml": "schedules:\n  - name: nightly\n    cron: '0 3 * * *'\n    select: [m0, mo]\n"},
        [Want("extra.yml", 2, None, "schedule 'nightly' selects unknown model 'mo'")],
    ),
    Case(
        "alert_bad_webhook",
        {"extra.yml": "alerts:\n  - name: a1\n    'on': [blocked]\n    webhook: ftp://x\n"},
        [Want("extra.yml", 2, "a1", "webhook must be an http:// or https:// URL")],
    ),
]

BAD_NAMES = [
    '"quoted"',
    "with space",
    'x"; drop table y; --',
    "fëature",
    "select",
    "Select",
    "x" * 64,
    "1abc",
    "a-b",
    "a.b",
]


def _name_case(name: str) -> Case:
    # json.dumps gives a YAML double-quoted scalar (escapes included)
    return Case(
        f"bad_name_{BAD_NAMES.index(name)}",
        {"extra.yml": _models(f"  - name: {json.dumps(name)}\n    sql: select 1\n")},
        [Want("extra.yml", 2, name, f"name {name!r} ")],
    )


CASES += [_name_case(n) for n in BAD_NAMES]


def _write_project(make_repo, files: dict[str, str | None]):
    merged = {**BASE, **files}
    return make_repo({k: v for k, v in merged.items() if v is not None})


def _load_errors(tree) -> list[Issue]:
    with pytest.raises(ProjectError) as info:
        load_project(tree)
    return info.value.issues


def _tree(kind: str, repo):
    return DirTree(str(repo.path)) if kind == "dir" else GitTree(str(repo.path), repo.head())


def test_base_project_is_valid(make_repo):
    repo = _write_project(make_repo, {})
    for kind in ("dir", "git"):
        project = load_project(_tree(kind, repo))
        assert list(project.nodes) == ["nums", "m0"]
        assert project.nodes["m0"].deps == ("nums",)


@pytest.mark.parametrize("kind", ["dir", "git"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_project(make_repo, case: Case, kind: str):
    repo = _write_project(make_repo, case.files)
    issues = _load_errors(_tree(kind, repo))
    got = [(i.file, i.line, i.model) for i in issues]
    want = [(w.file, w.line, w.model) for w in case.want]
    assert got == want, "\n".join(str(i) for i in issues)
    for issue, w in zip(issues, case.want, strict=True):
        assert w.text in issue.message, str(issue)


def test_error_message_lists_every_issue_with_location(make_repo):
    repo = _write_project(
        make_repo, {"extra.yml": _models("  - name: x\n    sql: select 1\n    colums: {}\n")}
    )
    with pytest.raises(ProjectError) as info:
        load_project(GitTree(str(repo.path), repo.head()))
    text = str(info.value)
    assert "(1 error(s))" in text
    assert "extra.yml:4 [x]: unknown key 'colums'" in text
    assert info.value.exit_code == 2


def test_all_errors_are_reported_at_once(make_repo):
    repo = _write_project(
        make_repo,
        {
            "extra.yml": _models(
                "  - name: x\n    sql: select 1\n    colums: {}\n"  # unknown key, line 4
                "  - name: y\n    sql: select (1\n"  # bad SQL, line 6
            ),
            "sources.yml": "sources:\n  - name: s\n    path: data/nope.csv\n",  # missing file, line 3
        },
    )
    for kind in ("dir", "git"):
        issues = _load_errors(_tree(kind, repo))
        assert len(issues) == 3, issues
        assert {(i.file, i.line, i.model) for i in issues} == {
            ("extra.yml", 4, "x"),
            ("extra.yml", 6, "y"),
            ("sources.yml", 3, "s"),
        }


def test_errors_in_several_files_and_sections_are_all_reported(make_repo):
    repo = _write_project(
        make_repo,
        {
            "gitops_data.yaml": "name: t\nproduction_rf: main\n",
            "a.yml": "models:\n  - name: bad name\n    sql: select 1\n",
            "b.yml": "models:\n  - name: ok\n    sql: select * from nums\n    tags: 5\n",
            "c.yml": "models: [\n",
        },
    )
    issues = _load_errors(DirTree(str(repo.path)))
    assert sorted((i.file, i.line) for i in issues) == [
        ("a.yml", 2),
        ("b.yml", 4),
        ("c.yml", 2),
        ("gitops_data.yaml", 2),
    ]


def test_reference_to_invalid_model_is_not_reported_as_unknown(make_repo):
    repo = _write_project(
        make_repo,
        {
            "extra.yml": _models("  - name: x\n    sql: select (1\n  - name: y\n    sql: select * from x\n"),
        },
    )
    issues = _load_errors(DirTree(str(repo.path)))
    assert [(i.line, i.model) for i in issues] == [(3, "x")], [str(i) for i in issues]


def test_alert_on_key_unquoted(make_repo):
    repo = _write_project(
        make_repo, {"extra.yml": "alerts:\n  - name: a1\n    on: [blocked]\n    file: alerts.log\n"}
    )
    project = load_project(DirTree(str(repo.path)))
    assert [a.on for a in project.alerts] == [["blocked"]]


def test_isin_values_are_not_turned_into_booleans(make_repo):
    repo = _write_project(
        make_repo,
        {
            "extra.yml": _models(
                "  - name: x\n    sql: select 'NO' as c\n    columns:\n"
                "      c: {checks: [{isin: [DE, NO]}]}\n"
            ),
        },
    )
    project = load_project(DirTree(str(repo.path)))
    assert project.nodes["x"].columns["c"].checks[0].args == ["DE", "NO"]


# --- symbolic links ------------------------------------------------------------------------------


def _symlink_repo(make_repo, tmp_path):
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("id,password\n1,hunter2\n")
    repo = _write_project(make_repo, {"extra.yml": "seeds:\n  - name: leak\n    path: seeds/leak.csv\n"})
    os.symlink(secret, repo.path / "seeds" / "leak.csv")
    repo.commit("add a link")
    assert repo.git("ls-files", "-s", "seeds/leak.csv").startswith("120000")  # committed as a link
    return repo


@pytest.mark.parametrize("kind", ["dir", "git"])
def test_symlink_pointing_outside_is_refused_as_seed_path(make_repo, tmp_path, kind):
    repo = _symlink_repo(make_repo, tmp_path)
    issues = _load_errors(_tree(kind, repo))
    assert [(i.file, i.line, i.model) for i in issues] == [("extra.yml", 3, "leak")]
    assert "symbolic link" in issues[0].message
    assert "hunter2" not in str(issues[0])


def test_symlinked_sql_file_in_git_is_refused(make_repo, tmp_path):
    repo = _write_project(
        make_repo,
        {
            "extra.yml": _models("  - name: x\n    sql_file: models/x.sql\n"),
            "models/real.sql": "select 1 as one\n",
        },
    )
    os.symlink("real.sql", repo.path / "models" / "x.sql")  # relative link, inside the repo
    repo.commit("link")
    issues = _load_errors(GitTree(str(repo.path), repo.head()))
    assert [(i.file, i.line, i.model) for i in issues] == [("extra.yml", 3, "x")]
    assert "models/x.sql is a symbolic link; links are not followed" in issues[0].message


@pytest.mark.parametrize("kind", ["dir", "git"])
def test_symlinked_yaml_file_is_an_issue_not_a_crash(make_repo, tmp_path, kind):
    outside = tmp_path / "outside.yml"
    outside.write_text("models:\n  - name: evil\n    sql: select 1\n")
    repo = _write_project(make_repo, {})
    os.symlink(outside, repo.path / "evil.yml")
    repo.commit("link yaml")
    issues = _load_errors(_tree(kind, repo))
    assert [(i.file, i.model) for i in issues] == [("evil.yml", None)]
    assert "symbolic link" in issues[0].message


def test_sql_file_that_is_a_directory_is_an_issue(make_repo):
    repo = _write_project(make_repo, {"extra.yml": _models("  - name: x\n    sql_file: seeds\n")})
    issues = _load_errors(DirTree(str(repo.path)))
    assert [(i.file, i.line, i.model) for i in issues] == [("extra.yml", 3, "x")]


# --- the CLI -------------------------------------------------------------------------------------


def _cli(cwd, *args: str) -> subprocess.CompletedProcess:
    code = (
        "import sys; from gitops_data.cli import cli_main; "
        f"sys.argv = ['gitops-data', *{list(args)!r}]; cli_main()"
    )
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}
    env.pop("GITOPS_DATA_REPO", None)
    env.pop("GITOPS_DATA_WAREHOUSE", None)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


BROKEN = {
    "extra.yml": _models(
        "  - name: x\n    sql: select 1\n    colums: {}\n  - name: y\n    sql: drop table nums\n"
    ),
}


def test_cli_validate_folder_with_errors_exits_2_with_locations(make_repo, tmp_path):
    repo = _write_project(make_repo, BROKEN)
    res = _cli(tmp_path, "--repo", str(repo.path), "validate")
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "Traceback" not in out
    assert "(2 error(s))" in res.stderr
    assert "extra.yml:4" in res.stderr and "unknown key 'colums'" in res.stderr
    assert "extra.yml:6" in res.stderr and "found DROP" in res.stderr


def test_cli_validate_path_argument_and_ref(make_repo, tmp_path):
    repo = _write_project(make_repo, {})
    ok = _cli(tmp_path, "validate", str(repo.path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "valid" in ok.stdout and "2 nodes (1 seed, 1 sql)" in ok.stdout
    # break the working copy only: the committed main is still valid, the folder is not
    repo.write("extra.yml", BROKEN["extra.yml"])
    folder = _cli(tmp_path, "validate", str(repo.path))
    assert folder.returncode == 2 and "extra.yml:4" in folder.stderr
    committed = _cli(tmp_path, "--repo", str(repo.path), "validate", "--ref", "main")
    assert committed.returncode == 0, committed.stdout + committed.stderr


def test_cli_validate_unknown_ref_is_a_clean_error(make_repo, tmp_path):
    repo = _write_project(make_repo, {})
    res = _cli(tmp_path, "--repo", str(repo.path), "validate", "--ref", "nope")
    assert res.returncode == 1
    assert "ref 'nope' does not exist" in res.stderr
    assert "Traceback" not in res.stdout + res.stderr


def test_cli_validate_shows_model_name(make_repo, tmp_path):
    repo = _write_project(make_repo, BROKEN)
    res = _cli(tmp_path, "validate", str(repo.path))
    assert res.returncode == 2
    assert "extra.yml:4 [x]: unknown key 'colums'" in res.stderr


def test_cli_validate_message_with_markup_characters(make_repo, tmp_path):
    repo = _write_project(make_repo, {"extra.yml": '"[/x]": []\n'})
    res = _cli(tmp_path, "validate", str(repo.path))
    assert "Traceback" not in res.stdout + res.stderr
    assert res.returncode == 2
    assert "unknown top-level key '[/x]'" in res.stderr


def test_checks_on_an_external_table_are_a_validate_error(tmp_path):
    (tmp_path / "gitops_data.yaml").write_text("name: t\n")
    (tmp_path / "p.yml").write_text(
        "sources:\n  - name: accounts\n    table: crm.accounts\n    columns: {id: {unique: true}}\n"
        "models:\n  - name: a\n    sql: select id from accounts\n"
    )
    issues = _load_errors(DirTree(str(tmp_path)))
    assert [(i.file, i.line, i.model) for i in issues] == [("p.yml", 2, "accounts")]
    assert "declare them on a model that selects from it" in issues[0].message
