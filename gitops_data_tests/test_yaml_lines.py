"""The YAML reader: libyaml's parser and PyYAML's own give the same data, lines and errors."""

from __future__ import annotations

import pytest
import yaml

from gitops_data.project import yaml_lines
from gitops_data.project.yaml_lines import YamlSyntaxError, parse_yaml

DOC = """\
name: t
models:
  - name: a   # a comment
    sql: |
      select 1 as v
    checks: [{column: v, isin: [DE, NO, on, yes]}]
    enabled: true
    weight: 1.5
    tags: []
  - name: b
    meta: {owner: ~, since: 2024-01-01, count: 0x10}
"""


def _pure(text: str):
    return yaml.load(text, Loader=yaml_lines._Loader)  # noqa: S506 - a SafeLoader


def _shape(value):
    """Data with every line the reader recorded, to compare both readers exactly."""
    if isinstance(value, dict):
        return ("map", value.line, value.key_lines, {k: _shape(v) for k, v in value.items()})
    if isinstance(value, list):
        return ("seq", value.line, [_shape(v) for v in value])
    return (type(value).__name__, value)


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")
def test_libyaml_reads_what_the_pure_reader_reads():
    done, fast = yaml_lines._load_fast(DOC)
    assert done  # libyaml read it
    assert _shape(parse_yaml(DOC)) == _shape(fast)
    assert _shape(fast) == _shape(_pure(DOC))
    assert fast["models"][0]["checks"][0]["isin"] == ["DE", "NO", "on", "yes"]  # YAML 1.2 booleans
    assert fast["models"][1].line == 10 and fast["models"][1].key_lines["meta"] == 11


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a: &x [1, 2]\nb: *x\n", 2, "anchors and aliases"),
        ("a: 1\na: 2\n", 2, "duplicate key 'a'"),
        ("a: [1, 2\nb: 3\n", 2, "YAML syntax error"),
        ("? [1, 2]\n: x\n", 1, "mapping keys must be plain scalars"),
        ("a: 1\nb:\t2\n", 2, "YAML syntax error"),  # libyaml would take it: not valid here or there
    ],
)
def test_errors_name_the_line_whichever_reader_reads(text: str, line: int, words: str):
    with pytest.raises(YamlSyntaxError) as err:
        parse_yaml(text)
    assert words in str(err.value)
    assert err.value.line == line


def test_an_empty_document_is_none():
    assert parse_yaml("") is None
    assert parse_yaml("# only a comment\n") is None
