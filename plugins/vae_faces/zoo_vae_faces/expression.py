"""The encoding-arithmetic language of `zoo generate vae_faces arithmetic` (pure Python, no torch).

::

    expression := [sign] term (sign term)*        sign := "+" | "-"
    term       := group | "[" path ("," path)* "]"
    group      := literal ("&" literal)*
    literal    := ["~"] name                       name := letters, digits, "_" or "."

A group such as ``glasses&~male`` stands for the mean encoding of images whose labels match
every literal (``~`` negates one); a bracketed list stands for the mean encoding of those
image files. Example: ``glasses&male - glasses&~male + ~glasses&~male``.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo_core.api import UsageError

NAME_PUNCTUATION = "_."
# Each term is one picture of the figure's row and holds its group's images until the row is decoded: 16 terms
# make a 17-picture row (the book's example has 3), and keep a command line from allocating per term unbounded.
MAX_TERMS = 16


class ExpressionError(UsageError):
    """A malformed or unresolvable arithmetic expression; the message gives the position (1-based)."""


@dataclass(frozen=True)
class Literal:
    name: str
    negated: bool
    position: int

    def __str__(self) -> str:
        return ("~" if self.negated else "") + self.name


@dataclass(frozen=True)
class AttributeGroup:
    """Images whose labels satisfy every literal."""

    literals: tuple[Literal, ...]

    def __str__(self) -> str:
        return "&".join(str(literal) for literal in self.literals)


@dataclass(frozen=True)
class PathList:
    """Image files given explicitly."""

    paths: tuple[str, ...]

    def __str__(self) -> str:
        return "[" + ",".join(self.paths) + "]"


@dataclass(frozen=True)
class Term:
    sign: int
    operand: AttributeGroup | PathList
    position: int

    def __str__(self) -> str:
        return str(self.operand)


@dataclass(frozen=True)
class Expression:
    terms: tuple[Term, ...]
    text: str

    def __str__(self) -> str:
        parts = []
        for index, term in enumerate(self.terms):
            sign = "-" if term.sign < 0 else "+"
            parts.append(f"{sign}{term}" if index == 0 and term.sign < 0 else
                         str(term) if index == 0 else f" {sign} {term}")
        return "".join(parts)


def _is_name_char(char: str) -> bool:
    return char.isalnum() or char in NAME_PUNCTUATION


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.index = 0

    def fail(self, message: str, index: int | None = None) -> ExpressionError:
        where = self.index if index is None else index
        near = self.text[where:where + 12]
        found = f' (near "{near}")' if near else " (at the end)"
        # a long expression is quoted by its start: the error stays one readable line
        quoted = self.text if len(self.text) <= 200 else f"{self.text[:120]}... ({len(self.text)} characters)"
        return ExpressionError(f'arithmetic: {message} at position {where + 1}{found} in "{quoted}"')

    def skip_spaces(self) -> None:
        while self.index < len(self.text) and self.text[self.index].isspace():
            self.index += 1

    def peek(self) -> str:
        self.skip_spaces()
        return self.text[self.index] if self.index < len(self.text) else ""

    def expression(self) -> Expression:
        if not self.text.strip():
            raise ExpressionError('arithmetic: the expression is empty; write e.g. '
                                  '"glasses&male - glasses&~male + ~glasses&~male"')
        terms = []
        sign = 1
        if self.peek() in ("+", "-"):
            sign = -1 if self.peek() == "-" else 1
            self.index += 1
        terms.append(self.term(sign))
        while self.peek():
            char = self.peek()
            if char not in ("+", "-"):
                raise self.fail("expected + or - between terms")
            if len(terms) == MAX_TERMS:
                raise self.fail(f"more than {MAX_TERMS} terms, the most an expression may have (each is a picture "
                                "of the figure's row)")
            self.index += 1
            terms.append(self.term(-1 if char == "-" else 1))
        return Expression(tuple(terms), self.text)

    def term(self, sign: int) -> Term:
        char = self.peek()
        position = self.index
        if char == "[":
            return Term(sign, self.path_list(), position)
        return Term(sign, self.group(), position)

    def group(self) -> AttributeGroup:
        literals = [self.literal()]
        while self.peek() == "&":
            self.index += 1
            literals.append(self.literal())
        return AttributeGroup(tuple(literals))

    def literal(self) -> Literal:
        negated = False
        if self.peek() == "~":
            negated = True
            self.index += 1
        self.skip_spaces()
        start = self.index
        while self.index < len(self.text) and _is_name_char(self.text[self.index]):
            self.index += 1
        if self.index == start:
            expected = "an attribute name after ~" if negated else "an attribute name, ~ or ["
            raise self.fail(f"expected {expected}")
        return Literal(self.text[start:self.index], negated, start)

    def path_list(self) -> PathList:
        opened = self.index
        self.index += 1
        closing = self.text.find("]", self.index)
        if closing < 0:
            raise self.fail("'[' is never closed", opened)
        paths = []
        offset = self.index
        for part in self.text[self.index:closing].split(","):
            path = part.strip()
            if not path:
                raise self.fail("empty image path in the list", offset)
            paths.append(path)
            offset += len(part) + 1
        self.index = closing + 1
        return PathList(tuple(paths))


def parse_expression(text: str) -> Expression:
    """Parse ``text``; any syntax error is one :class:`ExpressionError` line naming the position."""
    return _Parser(text).expression()
