"""project/dbt/template_cache.py: compiled Jinja code is reused only for the same source in an
environment that compiles it the same way."""

from __future__ import annotations

import jinja2
import pytest

from gitops_data.project.dbt.jinja import make_environment
from gitops_data.project.dbt.template_cache import TEMPLATES, CompiledTemplates, compile_expression


@pytest.fixture(autouse=True)
def empty_cache():
    TEMPLATES.clear()
    yield
    TEMPLATES.clear()


def _env(texts: dict[str, str], native: bool = False) -> jinja2.Environment:
    return make_environment(jinja2.DictLoader(texts), native=native)


def test_the_same_source_compiles_once_across_environments():
    one = _env({"m.sql": "select {{ 1 + 1 }}"}).get_template("m.sql").render()
    two = _env({"m.sql": "select {{ 1 + 1 }}"}).get_template("m.sql").render()
    assert one == two == "select 2"
    assert (TEMPLATES.hits, TEMPLATES.misses) == (1, 1)


def test_a_changed_source_compiles_anew():
    _env({"m.sql": "select {{ 1 + 1 }}"}).get_template("m.sql").render()
    assert _env({"m.sql": "select {{ 2 + 2 }}"}).get_template("m.sql").render() == "select 4"
    assert TEMPLATES.misses == 2


def test_native_and_text_environments_keep_their_own_code():
    text = _env({"t": "{{ [1, 2] }}"}).get_template("t").render()
    native = _env({"t": "{{ [1, 2] }}"}, native=True).get_template("t").render()
    assert text == "[1, 2]" and native == [1, 2]
    assert TEMPLATES.misses == 2


def test_an_environment_with_other_filters_does_not_share_code():
    plain = _env({"t": "{{ 'a' | shout }}"})
    plain.filters["shout"] = str.upper
    assert plain.get_template("t").render() == "A"
    other = _env({"t": "{{ 'a' | shout }}"})
    with pytest.raises(jinja2.TemplateAssertionError, match="shout"):
        other.get_template("t")


def test_least_recently_used_code_goes_first():
    cache = CompiledTemplates(limit=1)
    env = make_environment(jinja2.DictLoader({"a": "a", "b": "b"}))
    env.bytecode_cache = cache
    env.get_template("a")
    env.get_template("b")
    assert len(cache._code) == 1


def test_compile_expression_gives_what_jinja_gives_and_reuses_its_code():
    env = _env({})
    ours = compile_expression(env, "ref('m') ~ x", undefined_to_none=False)
    theirs = env.compile_expression("ref('m') ~ x", undefined_to_none=False)
    ctx = {"ref": lambda name: f"<{name}>", "x": "!"}
    assert ours(**ctx) == theirs(**ctx) == "<m>!"
    again = compile_expression(_env({}), "ref('m') ~ x", undefined_to_none=False)
    assert again(**ctx) == "<m>!"
    with pytest.raises(jinja2.TemplateSyntaxError):
        compile_expression(env, "ref('m') )")
