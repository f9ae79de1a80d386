"""Compiled Jinja templates kept per process, keyed by content: the environment's configuration,
the template's name and a digest of its source. A project loaded again (another commit, one file
changed) compiles only the templates whose text changed; macros and models that stayed the same
reuse their code. Rendering is not cached here: what a render gives depends on vars, macros and
refs, so it is redone each load."""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from types import CodeType

import jinja2
from jinja2.bccache import Bucket

MAX_TEMPLATES = 50_000


_SIGNATURES: weakref.WeakKeyDictionary[jinja2.Environment, tuple[frozenset, frozenset, str]] = (
    weakref.WeakKeyDictionary()
)


def environment_signature(env: jinja2.Environment) -> str:
    """What in an environment changes the code Jinja compiles: its class (native or not), its
    extensions, filters and tests (unknown names compile differently), its syntax options. Kept per
    environment while its filters and tests stay as they were."""
    seen = _SIGNATURES.get(env)
    if seen is not None and env.filters.keys() == seen[0] and env.tests.keys() == seen[1]:
        return seen[2]
    parts = (
        f"{type(env).__module__}.{type(env).__qualname__}",
        sorted(env.extensions),
        sorted(env.filters),
        sorted(env.tests),
        env.block_start_string,
        env.block_end_string,
        env.variable_start_string,
        env.variable_end_string,
        env.comment_start_string,
        env.comment_end_string,
        env.line_statement_prefix,
        env.line_comment_prefix,
        env.trim_blocks,
        env.lstrip_blocks,
        env.keep_trailing_newline,
        env.newline_sequence,
        env.optimized,
        env.autoescape if isinstance(env.autoescape, bool) else repr(env.autoescape),
    )
    signature = hashlib.sha256(repr(parts).encode()).hexdigest()
    _SIGNATURES[env] = (frozenset(env.filters), frozenset(env.tests), signature)
    return signature


class CompiledTemplates(jinja2.BytecodeCache):
    """An in-memory, thread-safe, bounded (least recently used out) Jinja bytecode cache. Jinja asks
    it with the template's name (`bucket.key`) and a digest of its source (`bucket.checksum`), so a
    changed template is never served old code."""

    def __init__(self, limit: int = MAX_TEMPLATES):
        self.limit = limit
        self._code: OrderedDict[tuple[str, str, str], CodeType] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _key(self, bucket: Bucket) -> tuple[str, str, str]:
        return (environment_signature(bucket.environment), bucket.key, bucket.checksum)

    def load_bytecode(self, bucket: Bucket) -> None:
        key = self._key(bucket)
        with self._lock:
            code = self._code.get(key)
            if code is None:
                self.misses += 1
                return
            self._code.move_to_end(key)
            self.hits += 1
        bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is None:
            return
        key = self._key(bucket)
        with self._lock:
            self._code[key] = bucket.code
            self._code.move_to_end(key)
            while len(self._code) > self.limit:
                self._code.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._code.clear()
            self.hits = self.misses = 0


TEMPLATES = CompiledTemplates()  # shared by every dbt project this process loads


_EXPRESSIONS: OrderedDict[tuple[str, str], CodeType] = OrderedDict()
_EXPRESSIONS_LOCK = threading.Lock()


def compile_expression(
    env: jinja2.Environment, source: str, undefined_to_none: bool = True
) -> jinja2.environment.TemplateExpression:
    """`env.compile_expression(source, undefined_to_none)`, its code reused when the same
    environment configuration compiled the same source before (as Jinja compiles it)."""
    from jinja2 import nodes
    from jinja2.environment import TemplateExpression
    from jinja2.parser import Parser

    key = (environment_signature(env), source)
    with _EXPRESSIONS_LOCK:
        code = _EXPRESSIONS.get(key)
    if code is None:
        parser = Parser(env, source, state="variable")
        try:
            expr = parser.parse_expression()
            if not parser.stream.eos:
                raise jinja2.TemplateSyntaxError(
                    "chunk after expression", parser.stream.current.lineno, None, None
                )
            expr.set_environment(env)
        except jinja2.TemplateSyntaxError:
            env.handle_exception(source=source)
        body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
        code = env.compile(nodes.Template(body, lineno=1))
        with _EXPRESSIONS_LOCK:
            _EXPRESSIONS[key] = code
            while len(_EXPRESSIONS) > MAX_TEMPLATES:
                _EXPRESSIONS.popitem(last=False)
    template = env.template_class.from_code(env, code, env.make_globals(None))
    return TemplateExpression(template, undefined_to_none)
