"""naming: identifiers and quoting, branch slugs and environment schemas, physical table names."""

from __future__ import annotations

import pytest

from gitops_data import naming
from gitops_data.errors import IdentifierError

TRICKY_BRANCHES = [
    "feature/x",
    "feature-x",
    "feature_x",
    "Feature/X",
    "FEATURE_X",
    "feature.x",
    "feature//x",
    "feature/x/",
    "a..b",
    "a.b",
    "a/b",
    "a_b",
    "a__b",
    ".hidden",
    "hidden",
    "_hidden",
    "fëature",
    "feature",
    "fêature",
    "ä",
    "ö",
    "日本",
    "x_0123abcd",
    "x",
    "x_0123abc",
    "x_0123ABCD",
    "ref",
    "_",
    "__",
    "-",
    "@",
    "1",
    "123",
    "0123abcd",
    "dev",
    "main2",
    "release/v1.2",
    "release/v1_2",
    "release-v1.2",
    "release_v1_2",
    "dependabot/npm_and_yarn/lodash-4.17.21",
    "a" * 40,
    "a" * 41,
    "a" * 200,
    "a" * 199 + "b",
    "a" * 30 + "/x",
    "a" * 30 + "/y",
    "a" * 30 + "_x",
    "a" * 30,
    "select",
    "with space",
    'x"; drop table y; --',
]


def test_tricky_branch_names_are_distinct():
    assert len(set(TRICKY_BRANCHES)) == len(TRICKY_BRANCHES)


def test_environment_schema_is_injective_and_valid():
    schemas = {b: naming.environment_schema("analytics", b, "main") for b in TRICKY_BRANCHES}
    assert len(set(schemas.values())) == len(TRICKY_BRANCHES)
    assert "analytics" not in schemas.values()  # no branch lands on production's schema
    for branch, schema in schemas.items():
        assert naming.identifier_problem(schema) is None, (branch, schema)
        assert schema.startswith("analytics__"), (branch, schema)


def test_branch_slug_is_injective_and_deterministic():
    slugs = [naming.branch_slug(b) for b in TRICKY_BRANCHES]
    assert len(set(slugs)) == len(slugs)
    assert slugs == [naming.branch_slug(b) for b in TRICKY_BRANCHES]
    for slug in slugs:
        assert slug.replace("_", "").isalnum() or set(slug) <= {"_"}
        assert slug == slug.lower() and slug.isascii()
        assert len(slug) <= 40


@pytest.mark.parametrize(
    ("branch", "schema"),
    [
        ("main", "analytics"),
        ("dev", "analytics__dev"),
        ("feature_x", "analytics__feature_x"),
        ("a" * 40, "analytics__" + "a" * 40),
        ("feature/x", "analytics__feature_x_" + naming.short_hash("feature/x")),
        ("Feature/X", "analytics__feature_x_" + naming.short_hash("Feature/X")),
        ("x_0123abcd", "analytics__x_0123abcd_" + naming.short_hash("x_0123abcd")),
        ("fëature", "analytics__f_ature_" + naming.short_hash("fëature")),
        ("日本", "analytics__ref_" + naming.short_hash("日本")),
        ("a" * 41, "analytics__" + "a" * 30 + "_" + naming.short_hash("a" * 41)),
    ],
)
def test_environment_schema_examples(branch, schema):
    assert naming.environment_schema("analytics", branch, "main") == schema


def test_production_ref_setting_decides_which_branch_is_production():
    assert naming.environment_schema("analytics", "prod", "prod") == "analytics"
    assert naming.environment_schema("analytics", "main", "prod") == "analytics__main"


@pytest.mark.parametrize("ref", ["", "   ", "\t"])
def test_empty_branch_is_refused(ref):
    with pytest.raises(IdentifierError):
        naming.branch_slug(ref)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("ok_name", None),
        ("_x1", None),
        ("X" * 63, None),
        ("X" * 64, "64 characters long"),
        ("", "non-empty"),
        (None, "non-empty"),
        (5, "non-empty"),
        ("1x", "must not start with a digit"),
        ("a-b", "may only contain"),
        ("fëature", "may only contain"),
        ('x"; drop table y; --', "may only contain"),
        ("select", "reserved word"),
        ("SELECT", "reserved word"),
        ("Table", "reserved word"),
    ],
)
def test_identifier_problem(name, problem):
    got = naming.identifier_problem(name)
    if problem is None:
        assert got is None
    else:
        assert got is not None and problem in got


def test_check_identifier_and_quoting():
    assert naming.check_identifier("orders") == "orders"
    with pytest.raises(IdentifierError, match="model 'a b' may only contain"):
        naming.check_identifier("a b", "model")
    assert naming.quote('we"ird') == '"we""ird"'
    assert naming.qualified("s", "t") == '"s"."t"'
    assert naming.physical_table("orders", "0123456789abcdef", "b1") == "orders__0123456789ab__b1"
