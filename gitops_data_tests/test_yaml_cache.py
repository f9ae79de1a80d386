"""project/yaml_cache.py: the same text parses once; each caller gets its own copy; errors repeat."""

from __future__ import annotations

import datetime

import pytest

from gitops_data.project.yaml_cache import DOCUMENTS, YamlDocuments, copy_document
from gitops_data.project.yaml_lines import LineDict, YamlSyntaxError, parse_yaml

TEXT = b"models:\n  - name: a\n    tags: [x, y]\n    meta: {when: 2026-12-03}\n"


@pytest.fixture(autouse=True)
def empty_cache():
    DOCUMENTS.clear()
    yield
    DOCUMENTS.clear()


def test_the_same_text_parses_once_and_each_caller_gets_its_own_copy():
    one = parse_yaml(TEXT)
    one["models"][0]["tags"].append("changed by a loader")
    one["models"][0].key_lines["name"] = 99
    two = parse_yaml(TEXT)
    assert (DOCUMENTS.hits, DOCUMENTS.misses) == (1, 1)
    assert two["models"][0]["tags"] == ["x", "y"]
    assert isinstance(two, LineDict) and two["models"][0].key_lines["name"] == 2
    assert two["models"].line == 2 and two["models"][0]["tags"].line == 3
    assert two["models"][0]["meta"]["when"] == datetime.date(2026, 12, 3)


def test_a_changed_text_is_parsed_anew():
    parse_yaml(TEXT)
    changed = parse_yaml(TEXT.replace(b"name: a", b"name: b"))
    assert changed["models"][0]["name"] == "b" and DOCUMENTS.misses == 2


def test_a_syntax_error_is_raised_again_with_its_line():
    for _ in range(2):
        with pytest.raises(YamlSyntaxError, match="YAML syntax error") as exc:
            parse_yaml(b"a: 1\nb: [\n")
        assert exc.value.line == 3
    assert DOCUMENTS.hits == 1


def test_copies_of_sets_and_tuples_are_their_own():
    doc = {"s": {1, 2}, "t": ([1],)}
    copied = copy_document(doc)
    copied["s"].add(3)
    copied["t"][0].append(2)
    assert doc == {"s": {1, 2}, "t": ([1],)}


def test_least_recently_used_documents_go_first():
    cache = YamlDocuments(limit=2)
    for text in (b"a: 1", b"b: 1", b"a: 1", b"c: 1"):
        cache.parse(text, parse_yaml)
    assert len(cache._docs) == 2 and cache.hits == 1
    cache.parse(b"b: 1", parse_yaml)
    assert cache.misses == 4
