"""The spec language: ``warmup(500) >> cosine(3e-4, end=3e-6, steps=9500) * 0.5``.

Grammar (``*`` binds tighter than ``>>``)::

    expr    := product ('>>' product)*
    product := atom ('*' atom)*
    atom    := call | NUMBER | '(' expr ')'
    call    := NAME '(' [arg (',' arg)*] [','] ')'
    arg     := [NAME '='] value
    value   := NUMBER | NAME | 'true' | 'false' | 'none' | '[' [value (',' value)*] ']'

Errors carry the 1-based column of the offending token and say what was expected there.
Parentheses and lists nest at most ``MAX_DEPTH`` (100) levels; a ``>>`` chain of any length
is joined once, in linear time.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from lrdoctor.errors import ScheduleError
from lrdoctor.schedules._base import MAX_DEPTH, Schedule, registry, spec_fields
from lrdoctor.schedules._compose import Sequence

__all__ = ["parse"]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf\b)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op>>>|[*(),=\[\]])
  | (?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)

_WORDS = {"true": True, "false": False, "none": None, "null": None}


class _Tok(NamedTuple):
    kind: str  # number, name, op, end
    text: str
    col: int  # 1-based


def _tokenize(text: str) -> list[_Tok]:
    toks = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "space":
            continue
        if kind == "bad":
            raise ScheduleError(
                f"unexpected character {m.group()!r}; expected a name, a number, "
                "'(', ')', ',', '=', '[', ']', '*' or '>>'",
                spec=text,
                column=m.start() + 1,
            )
        toks.append(_Tok(kind, m.group(), m.start() + 1))  # type: ignore[arg-type]
    toks.append(_Tok("end", "", len(text) + 1))
    return toks


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0  # open '(' and '[' around the current token

    def enter(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"the spec nests more than {MAX_DEPTH} levels of brackets; "
                            "flatten it (a >> b >> c needs no parentheses)", tok)

    # -- helpers -------------------------------------------------------------------------
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, message: str, tok: _Tok | None = None) -> ScheduleError:
        tok = tok or self.tok
        return ScheduleError(message, spec=self.text, column=tok.col)

    def describe(self, tok: _Tok) -> str:
        return "the end of the spec" if tok.kind == "end" else repr(tok.text)

    def expect(self, text: str, what: str) -> _Tok:
        tok = self.tok
        if tok.text != text or tok.kind == "end":
            raise self.fail(f"expected {what}, found {self.describe(tok)}")
        self.i += 1
        return tok

    # -- grammar -------------------------------------------------------------------------
    def parse(self) -> Schedule:
        if self.tok.kind == "end":
            raise self.fail("the spec is empty; expected a schedule such as cosine(0.1, steps=1000)")
        result = self.expr()
        if self.tok.kind != "end":
            raise self.fail(f"unexpected {self.describe(self.tok)}; expected '>>', '*' or the end")
        if isinstance(result, float):
            raise self.fail("a bare number is not a schedule; write constant(...)", self.toks[0])
        try:
            result(0)  # surfaces what only shows when evaluated, e.g. a warm-up with no target
        except ScheduleError as err:
            raise self.fail(err.reason, self.toks[0]) from None
        return result

    def expr(self) -> Schedule | float:
        start = self.tok
        first = self.product()
        if self.tok.text != ">>":
            return first
        items, ops = [(first, start)], []
        while self.tok.text == ">>":
            ops.append(self.tok)
            self.i += 1
            items.append((self.product(), ops[-1]))
        for side, tok in items:
            if isinstance(side, float):
                raise self.fail("'>>' joins schedules, not numbers", tok)
        # one Sequence for the whole chain (linear time); blame[i] is the token to point at
        # for the join after part i: its '>>', or the '(' of a parenthesised inner chain
        parts: list[Schedule] = []
        blame: list[_Tok] = []
        for k, (part, tok) in enumerate(items):
            after = ops[min(k, len(ops) - 1)]
            inner = part.parts if isinstance(part, Sequence) else (part,)
            parts.extend(inner)  # type: ignore[arg-type]
            blame.extend([tok] * (len(inner) - 1) + [after])
        try:
            return Sequence(parts=tuple(parts))
        except ScheduleError as err:
            join = getattr(err, "join", None)
            raise self.fail(err.reason, blame[join] if join is not None else ops[0]) from None

    def product(self) -> Schedule | float:
        left = self.atom()
        while self.tok.text == "*":
            op = self.tok
            self.i += 1
            right = self.atom()
            if isinstance(left, float) and isinstance(right, float):
                left = left * right
            else:
                left = self.wrap(lambda a=left, b=right: a * b, op)  # type: ignore[operator]
        return left

    def atom(self) -> Schedule | float:
        tok = self.tok
        if tok.kind == "number":
            self.i += 1
            return float(tok.text)
        if tok.text == "(":
            self.enter(tok)
            self.i += 1
            inner = self.expr()
            self.expect(")", "')' to close the '(' at column " + str(tok.col))
            self.depth -= 1
            return inner
        if tok.kind == "name":
            return self.call()
        raise self.fail(f"expected a schedule such as cosine(...), found {self.describe(tok)}")

    def call(self) -> Schedule:
        name_tok = self.tok
        self.i += 1
        cls = registry.get(name_tok.text)
        if cls is None or name_tok.text in ("sequence", "scaled", "product"):
            known = ", ".join(sorted(n for n in registry if n not in ("sequence", "scaled", "product")))
            raise self.fail(f"unknown schedule {name_tok.text!r}; expected one of {known}", name_tok)
        self.expect("(", f"'(' after {name_tok.text}")
        fields = spec_fields(cls)
        names = [f.metadata.get("spec") or f.name for f in fields]
        positional = [f.metadata.get("spec") or f.name for f in fields if not f.kw_only]
        kwargs: dict[str, Any] = {}
        where: dict[str, _Tok] = {}
        n_pos, seen_keyword = 0, False
        while self.tok.text != ")":
            arg_tok = self.tok
            if arg_tok.kind == "name" and self.toks[self.i + 1].text == "=":
                key = arg_tok.text
                if key not in names:
                    keywords = [n for n in names if n not in positional] or names
                    raise self.fail(
                        f"unknown argument {key!r} for {cls.name}; expected one of {', '.join(keywords)}",
                        arg_tok,
                    )
                self.i += 2
                seen_keyword = True
            else:
                if n_pos >= len(positional):
                    if not positional:
                        hint = f"{cls.name} takes keywords only: {', '.join(names)}"
                    else:
                        hint = f"{cls.name} takes {len(positional)} positional argument(s); name the rest: {', '.join(names)}"
                    raise self.fail(f"too many positional arguments; {hint}", arg_tok)
                if seen_keyword:
                    raise self.fail("a positional argument cannot follow a keyword argument", arg_tok)
                key = positional[n_pos]
                n_pos += 1
            if key in kwargs:
                raise self.fail(f"argument {key!r} given twice", arg_tok)
            where[key] = self.tok
            kwargs[key] = self.value()
            if self.tok.text == ",":
                self.i += 1
            elif self.tok.text != ")":
                raise self.fail(f"expected ',' or ')' in {cls.name}(...), found {self.describe(self.tok)}")
        close = self.tok
        self.i += 1
        try:
            return cls.build(**kwargs)
        except ScheduleError as err:
            # point at the argument the message names, else at the call
            tok = next((t for k, t in where.items() if err.reason.startswith(f"{cls.name}: {k} ")), None)
            if tok is None:
                tok = next((t for k, t in where.items() if f" {k} " in f" {err.reason} "), None)
            if tok is None:
                tok = next((t for k, t in where.items() if f"{cls.name}: {k}" in err.reason), None)
            if tok is None:
                tok = name_tok if "needs" not in err.reason else close
            raise self.fail(err.reason, tok) from None

    def value(self) -> Any:
        tok = self.tok
        if tok.kind == "number":
            self.i += 1
            if re.fullmatch(r"[+-]?\d+", tok.text) and len(tok.text) <= 400:
                return int(tok.text)  # exact: a step count is never rounded through a float
            return float(tok.text)  # a longer literal is beyond any count: inf or a big float
        if tok.kind == "name":
            self.i += 1
            return _WORDS.get(tok.text.lower(), tok.text)
        if tok.text == "[":
            self.enter(tok)
            self.i += 1
            items = []
            while self.tok.text != "]":
                items.append(self.value())
                if self.tok.text == ",":
                    self.i += 1
                elif self.tok.text != "]":
                    raise self.fail(f"expected ',' or ']' in a list, found {self.describe(self.tok)}")
            self.i += 1
            self.depth -= 1
            return items
        raise self.fail(f"expected a value (number, name, true/false or [list]), found {self.describe(tok)}")

    def wrap(self, build: Any, op: _Tok) -> Schedule:
        try:
            return build()
        except ScheduleError as err:
            raise self.fail(err.reason, op) from None


def parse(text: str) -> Schedule:
    """Parse a spec string into a :class:`Schedule`.

    >>> parse("warmup(2) >> constant(1.0)")(1)
    0.5
    >>> parse("cosine(0.1, steps=1000) * 0.5").to_spec()
    'cosine(0.1, steps=1000) * 0.5'
    """
    if isinstance(text, Schedule):
        return text
    if not isinstance(text, str):
        raise ScheduleError(f"a schedule spec must be a string, got {type(text).__name__}")
    return _Parser(text).parse()
