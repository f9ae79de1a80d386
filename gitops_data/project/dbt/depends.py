"""What a dbt file calls, read from its Jinja syntax tree without rendering it: the `ref(...)` and
`source(...)` calls with literal arguments, and direct macro calls (`name(...)`, `pkg.name(...)`),
as dbt's static parser fills a node's `depends_on` (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2
from jinja2 import nodes


@dataclass(frozen=True)
class StaticCalls:
    refs: tuple[tuple[str, ...], ...]  # (name,) or (package, name)
    sources: tuple[tuple[str, str], ...]
    macros: tuple[tuple[str | None, str], ...]  # (package or None, macro name)


def _block(text: str, block: str | None) -> str:
    """The `{% snapshot block %}` ... `{% endsnapshot %}` part of `text` (all of it without one)."""
    if block is None:
        return text
    m = re.search(
        r"\{%-?\s*snapshot\s+" + re.escape(block) + r"\s*-?%\}(.*?)\{%-?\s*endsnapshot\s*-?%\}", text, re.S
    )
    return m.group(1) if m else text


def static_calls(env: jinja2.Environment, text: str, block: str | None = None) -> StaticCalls:
    """The calls in `text` (of `block`, a snapshot's); empty if the text does not parse."""
    try:
        tree = env.parse(_block(text, block))
    except jinja2.TemplateSyntaxError:
        return StaticCalls((), (), ())
    refs: list[tuple[str, ...]] = []
    sources: list[tuple[str, str]] = []
    macros: list[tuple[str | None, str]] = []
    for call in tree.find_all(nodes.Call):
        target = call.node
        literal = [a.value for a in call.args if isinstance(a, nodes.Const) and isinstance(a.value, str)]
        whole = len(literal) == len(call.args)
        if isinstance(target, nodes.Name):
            if target.name == "ref" and whole and 1 <= len(literal) <= 2:
                refs.append(tuple(literal))
            elif target.name == "source" and whole and len(literal) == 2:
                sources.append((literal[0], literal[1]))
            elif target.name not in ("ref", "source", "config", "var", "env_var", "return"):
                macros.append((None, target.name))
        elif isinstance(target, nodes.Getattr) and isinstance(target.node, nodes.Name):
            macros.append((target.node.name, target.attr))
    unique = lambda items: tuple(dict.fromkeys(items))  # noqa: E731
    return StaticCalls(unique(refs), unique(sources), unique(macros))
