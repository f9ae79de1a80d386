"""YAML parsing that remembers line numbers, so errors can point at `file:line`."""

from __future__ import annotations

import re
from typing import Any

import yaml

from gitops_data.project.yaml_cache import DOCUMENTS


class LineDict(dict):
    """A mapping from YAML that knows its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]


class LineList(list):
    line: int = 0


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (only true/false, so `on:` stays a key and `isin: [DE, NO]`
    keeps Norway) and without aliases (a few hundred bytes of nested aliases expand to gigabytes)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases (*name) are not supported; repeat the value",
                event.start_mark,
            )
        return super().compose_node(parent, index)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "mapping keys must be plain scalars", key_node.start_mark
            )
        key = str(key) if not isinstance(key, str) else key
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)

# libyaml's parser (when PyYAML has it) with the same resolvers and constructors: about 5x faster.
# It cannot refuse an alias as it reads one, so a document whose nodes are shared (an alias) is read
# again by _Loader, which says where the alias is; so is any document it cannot read.
_CLoader = None
if yaml.__with_libyaml__:

    class _CLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
        yaml_constructors = _Loader.yaml_constructors


def _has_shared_nodes(root: yaml.Node) -> bool:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return False


def _load_fast(text: bytes | str) -> tuple[bool, Any]:
    """(True, data) when libyaml read the document and it has no alias; else (False, None)."""
    # libyaml also takes a tab after `key:`, which PyYAML's own parser refuses: so that a project is
    # valid or not whichever parser a machine has, a text with a tab is PyYAML's to read
    if _CLoader is None or ("\t" in text if isinstance(text, str) else b"\t" in text):
        return False, None
    loader = _CLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return True, None
        # an alias needs an anchor (`&name`): a text without `&` shares no node
        if ("&" in text if isinstance(text, str) else b"&" in text) and _has_shared_nodes(node):
            return False, None
        return True, loader.construct_document(node)
    except Exception:  # noqa: BLE001 - _Loader reads it again and says what is wrong
        return False, None
    finally:
        loader.dispose()


class YamlSyntaxError(ValueError):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


def parse_yaml(text: bytes | str) -> Any:
    """Parse one YAML document; raise YamlSyntaxError with the line of the problem. The same text
    parsed before in this process is not parsed again (project/yaml_cache.py)."""
    return DOCUMENTS.parse(text, _parse)


def _parse(text: bytes | str) -> Any:
    done, data = _load_fast(text)
    if done:
        return data
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise YamlSyntaxError(f"YAML syntax error: {msg}", line) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML error: {exc}", None) from exc
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(f"file is not UTF-8 text: {exc}", None) from exc
    except RecursionError:
        raise YamlSyntaxError("YAML is nested too deeply", None) from None


def line_of(data: Any, loc: tuple) -> int | None:
    """Best line for a pydantic error location inside `data`."""
    line = getattr(data, "line", None) or None
    node = data
    for part in loc:
        if isinstance(node, LineDict) and isinstance(part, str) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = getattr(node, "line", line) or line
        else:
            break
    return line
