"""The arithmetic expression parser: what it accepts, and one clear line for what it refuses."""

from __future__ import annotations

import pytest
from zoo_vae_faces.expression import AttributeGroup, ExpressionError, PathList, parse_expression


def test_book_expression_parses_into_signed_groups() -> None:
    parsed = parse_expression("glasses&male - glasses&~male + ~glasses&~male")
    assert [term.sign for term in parsed.terms] == [1, -1, 1]
    groups = [term.operand for term in parsed.terms]
    assert all(isinstance(group, AttributeGroup) for group in groups)
    assert [[(lit.name, lit.negated) for lit in group.literals] for group in groups] == [
        [("glasses", False), ("male", False)],
        [("glasses", False), ("male", True)],
        [("glasses", True), ("male", True)],
    ]
    assert str(parsed) == "glasses&male - glasses&~male + ~glasses&~male"


def test_spaces_leading_sign_and_path_lists() -> None:
    parsed = parse_expression("  - male +[faces/a.png , my face.jpg]-~ glasses ")
    assert [term.sign for term in parsed.terms] == [-1, 1, -1]
    assert isinstance(parsed.terms[1].operand, PathList)
    assert parsed.terms[1].operand.paths == ("faces/a.png", "my face.jpg")
    literal = parsed.terms[2].operand.literals[0]
    assert (literal.name, literal.negated) == ("glasses", True)


def test_literal_positions_point_into_the_text() -> None:
    text = "glasses&male - blond"
    parsed = parse_expression(text)
    for term in parsed.terms:
        for literal in term.operand.literals:
            assert text[literal.position:literal.position + len(literal.name)] == literal.name


@pytest.mark.parametrize(("text", "message", "position"), [
    ("glasses&&male", "expected an attribute name, ~ or [", 9),
    ("glasses male", "expected + or - between terms", 9),
    ("glasses -", "expected an attribute name, ~ or [", 10),
    ("~ [a.png]", "expected an attribute name after ~", 3),
    ("male + [a.png", "'[' is never closed", 8),
    ("[a.png,,b.png]", "empty image path in the list", 8),
    ("male)", "expected + or - between terms", 5),
    ("male * 2", "expected + or - between terms", 6),
])
def test_syntax_errors_name_the_position(text: str, message: str, position: int) -> None:
    with pytest.raises(ExpressionError) as error:
        parse_expression(text)
    line = str(error.value)
    assert "\n" not in line
    assert message in line
    assert f"at position {position} " in line
    assert f'in "{text}"' in line


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_expression_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ExpressionError, match=r"empty; write e\.g\."):
        parse_expression(text)
