"""Resolving expressions against labelled faces: group selection, random draws, signed means, clear errors."""

from __future__ import annotations

import pytest
import torch
from zoo_vae_faces.arithmetic import arithmetic_images, combine, gather_terms, group_mask
from zoo_vae_faces.expression import ExpressionError, parse_expression

from zoo_core.api import ImageSet


def labelled_faces() -> ImageSet:
    """16 single-colour faces; pixel value = index, labels from the index bits (glasses bit 0, male bit 1)."""
    index = torch.arange(16)
    images = index.to(torch.uint8).view(16, 1, 1, 1).expand(16, 3, 8, 8).contiguous()
    return ImageSet(images=images, labels={"glasses": index & 1, "male": (index >> 1) & 1},
                    classes={"glasses": ["no", "yes"], "male": ["no", "yes"]})


def indices(images: torch.Tensor) -> list[int]:
    return sorted(round(float(v) * 255) for v in images[:, 0, 0, 0])


def test_groups_select_by_every_literal() -> None:
    faces = labelled_faces()
    parsed = parse_expression("glasses&~male")
    mask = group_mask(parsed.terms[0].operand, faces, parsed.text)
    assert mask.nonzero().flatten().tolist() == [1, 5, 9, 13]


def test_draws_come_from_the_group_and_follow_the_seed() -> None:
    faces = labelled_faces()
    parsed = parse_expression("glasses&male - ~glasses")
    first = gather_terms(parsed, faces, 8, 2, torch.Generator().manual_seed(3))
    again = gather_terms(parsed, faces, 8, 2, torch.Generator().manual_seed(3))
    assert [indices(t.images) for t in first] == [indices(t.images) for t in again]
    assert set(indices(first[0].images)) <= {3, 7, 11, 15} and len(first[0].images) == 2
    assert set(indices(first[1].images)) <= {0, 2, 4, 6, 8, 10, 12, 14}
    assert [t.matched for t in first] == [4, 8]
    others = [indices(gather_terms(parsed, faces, 8, 2, torch.Generator().manual_seed(s))[1].images)
              for s in range(6)]
    assert len({tuple(o) for o in others}) > 1  # different seeds draw different members


def test_a_group_smaller_than_the_group_size_is_used_whole() -> None:
    (term,) = gather_terms(parse_expression("glasses&male"), labelled_faces(), 8, 10, torch.Generator())
    assert indices(term.images) == [3, 7, 11, 15]


def test_signed_means_and_the_decoded_grid() -> None:
    faces = labelled_faces()
    terms = gather_terms(parse_expression("glasses&male - glasses&~male + ~glasses&~male"), faces, 8, 4,
                         torch.Generator())

    def encode(images: torch.Tensor) -> torch.Tensor:
        return images[:, :1, 0, 0] * 255  # the face's index as its 1-d code

    means, result = combine(terms, encode)
    assert means.flatten().tolist() == [9.0, 7.0, 6.0]  # mean of (3,7,11,15), (1,5,9,13), (0,4,8,12)
    assert result.tolist() == [9.0 - 7.0 + 6.0]
    decoded = arithmetic_images(terms, encode, lambda z: z.view(-1, 1, 1, 1).expand(-1, 3, 2, 2))
    assert decoded.shape == (4, 3, 2, 2) and decoded[:, 0, 0, 0].tolist() == [9.0, 7.0, 6.0, 8.0]


def test_unknown_attributes_name_the_available_ones() -> None:
    with pytest.raises(ExpressionError) as error:
        gather_terms(parse_expression("glasses - mael"), labelled_faces(), 8, 3, torch.Generator())
    assert 'unknown attribute "mael" at position 11' in str(error.value)
    assert "available: glasses, male (did you mean male?)" in str(error.value)


def test_empty_groups_and_unlabelled_data_are_refused() -> None:
    with pytest.raises(ExpressionError, match=r"group glasses&~glasses \(position 1\) matches none of the 16"):
        gather_terms(parse_expression("glasses&~glasses"), labelled_faces(), 8, 3, torch.Generator())
    unlabelled = ImageSet(images=torch.zeros(4, 3, 8, 8, dtype=torch.uint8), labels={})
    with pytest.raises(ExpressionError, match="the data has no labels"):
        gather_terms(parse_expression("male"), unlabelled, 8, 3, torch.Generator())
    with pytest.raises(ExpressionError, match="group-size must be at least 1"):
        gather_terms(parse_expression("male"), labelled_faces(), 8, 0, torch.Generator())
