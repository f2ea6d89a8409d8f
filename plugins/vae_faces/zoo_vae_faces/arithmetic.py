"""Encoding arithmetic: resolve an expression's terms to images, average their encodings, decode.

``encode`` and ``decode`` are callables (a task passes named graphs on any runtime, the
benchmark passes torch modules), so the same arithmetic runs everywhere.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo_core.api import ImageSet, expand_image_paths, load_images, to_float
from zoo_vae_faces.expression import AttributeGroup, Expression, ExpressionError, Literal, PathList, Term

GENERIC_LABELS = ("class",)  # image-folder labels: their class names are the attributes, not the label itself
YES_NO = ["no", "yes"]


@dataclass(frozen=True)
class TermImages:
    """The images one term stands for, and how many items its group matched in all."""

    term: Term
    images: torch.Tensor
    matched: int


def attribute_atoms(faces: ImageSet) -> dict[str, tuple[str, int]]:
    """Attribute name → (label, value): binary labels by their own name, class names of named classes."""
    atoms: dict[str, tuple[str, int]] = {}
    for label, values in faces.labels.items():
        classes = faces.classes.get(label, [])
        count = len(classes) if classes else int(values.max()) + 1 if len(values) else 0
        if label not in GENERIC_LABELS and count <= 2:
            atoms[label] = (label, 1)
        if classes and classes != YES_NO:
            for index, name in enumerate(classes):
                atoms.setdefault(name, (label, index))
    return atoms


def _unknown(literal: Literal, atoms: dict[str, tuple[str, int]], text: str) -> ExpressionError:
    if not atoms:
        return ExpressionError(f'arithmetic: the data has no labels, so attribute "{literal.name}" (position '
                               f"{literal.position + 1}) cannot select images; use image lists like [a.png,b.png] "
                               "or --data with labelled faces (glasses set, CelebA, sub-folders)")
    close = difflib.get_close_matches(literal.name, list(atoms), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ExpressionError(f'arithmetic: unknown attribute "{literal.name}" at position {literal.position + 1} in '
                           f'"{text}"; available: {", ".join(atoms)}{hint}')


def group_mask(group: AttributeGroup, faces: ImageSet, text: str) -> torch.Tensor:
    """Which items of ``faces`` satisfy every literal of ``group`` (bool [N])."""
    atoms = attribute_atoms(faces)
    keep = torch.ones(len(faces), dtype=torch.bool)
    for literal in group.literals:
        if literal.name not in atoms:
            raise _unknown(literal, atoms, text)
        label, value = atoms[literal.name]
        match = faces.labels[label] == value
        keep &= ~match if literal.negated else match
    return keep


def gather_terms(expression: Expression, faces: ImageSet | None, image_size: int, group_size: int,
                 generator: torch.Generator) -> list[TermImages]:
    """Images for each term: ``group_size`` random members of each attribute group, or the listed files."""
    if group_size < 1:
        raise ExpressionError(f"arithmetic: --group-size must be at least 1, got {group_size}")
    gathered = []
    for term in expression.terms:
        if isinstance(term.operand, PathList):
            paths = expand_image_paths([Path(p) for p in term.operand.paths])
            images = load_images(paths, image_size)
            gathered.append(TermImages(term, images, len(paths)))
            continue
        if faces is None:
            raise ExpressionError(f"arithmetic: term {term} needs a labelled data set; pass --data or use image lists")
        mask = group_mask(term.operand, faces, expression.text)
        members = mask.nonzero().flatten()
        if len(members) == 0:
            raise ExpressionError(f"arithmetic: group {term} (position {term.position + 1}) matches none of the "
                                  f"{len(faces)} images; combine attributes that occur together")
        picked = members[torch.randperm(len(members), generator=generator)[:group_size]]
        gathered.append(TermImages(term, to_float(faces.images.index_select(0, picked)), len(members)))
    return gathered


def report_terms(terms: Sequence[TermImages], group_size: int) -> None:
    """One stderr line per term: how many images it averages, and from how many matches."""
    for item in terms:
        sign = "-" if item.term.sign < 0 else "+"
        if isinstance(item.term.operand, PathList):
            print(f"zoo: {sign} {item.term}: mean of {len(item.images)} listed images", file=sys.stderr)
        else:
            short = " (fewer than --group-size)" if item.matched < group_size else ""
            print(f"zoo: {sign} {item.term}: mean of {len(item.images)} of {item.matched} matching images{short}",
                  file=sys.stderr)


Encode = Callable[[torch.Tensor], torch.Tensor]
Decode = Callable[[torch.Tensor], torch.Tensor]


def combine(terms: Sequence[TermImages], encode: Encode) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean encoding per term [T,D], the signed sum of those means [D])."""
    means = torch.stack([encode(item.images).mean(dim=0) for item in terms])
    signs = torch.tensor([float(item.term.sign) for item in terms]).unsqueeze(1)
    return means, (signs * means).sum(dim=0)


def arithmetic_images(terms: Sequence[TermImages], encode: Encode, decode: Decode) -> torch.Tensor:
    """Decoded mean of each term, then the decoded result: float [T+1,3,S,S]."""
    means, result = combine(terms, encode)
    return decode(torch.cat([means, result.unsqueeze(0)]))
