"""The arithmetic's size is bounded where it is read: an expression of thousands of terms is one line, at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from zoo_vae_faces.expression import MAX_TERMS, ExpressionError, parse_expression


def test_the_most_terms_parse_and_one_more_is_refused() -> None:
    assert len(parse_expression(" - ".join(["glasses"] * MAX_TERMS)).terms) == MAX_TERMS
    with pytest.raises(ExpressionError, match=f"more than {MAX_TERMS} terms"):
        parse_expression(" + ".join(["male"] * (MAX_TERMS + 1)))


def test_a_long_expression_is_quoted_by_its_start() -> None:
    text = " + ".join(["glasses&male"] * 20_000)
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    message = str(caught.value)
    assert len(message) < 400 and "\n" not in message
    assert f"({len(text)} characters)" in message


@pytest.mark.parametrize("terms", [1_000, 20_000])
def test_zoo_generate_refuses_thousands_of_terms_in_one_line(zoo: Callable[..., Result], tiny_run: Path,
                                                            tmp_path: Path, terms: int) -> None:
    started = time.monotonic()
    result = zoo("generate", "vae_faces", "arithmetic", " + ".join(["glasses&male"] * terms), "--run", tiny_run,
                 "--device", "cpu", "--out", tmp_path / "x.png")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if not line.startswith("zoo: loaded ")]
    assert len(errors) == 1 and f"more than {MAX_TERMS} terms" in errors[0], result.stderr
    assert not (tmp_path / "x.png").exists()
    assert time.monotonic() - started < 10  # refused, not computed
