"""Chemical formulas: parsing and checks with messages that say how to fix them."""

from __future__ import annotations

import re
from math import gcd

from ase.data import atomic_numbers

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*)")
MAX_ELEMENTS = 4
MAX_FORMULA_ATOMS = 40
MAX_Z = 92  # ZBL and the oracles cover H..U


# Elements that are not metals (the usual periodic-table line): DFT uses smearing when any other
# element is present. Elements whose compounds are often magnetic get a starting moment.
NON_METALS = frozenset({"H", "He", "B", "C", "N", "O", "F", "Ne", "Si", "P", "S", "Cl", "Ar",
                        "Ge", "As", "Se", "Br", "Kr", "Sb", "Te", "I", "Xe", "At", "Rn"})
MAGNETIC = frozenset({"Cr", "Mn", "Fe", "Co", "Ni", "Gd"})


def has_metal(elements: list[str]) -> bool:
    """Whether any element is a metal (DFT then needs smearing)."""
    return any(e not in NON_METALS for e in elements)


def all_metals(elements: list[str]) -> bool:
    """Whether every element is a metal: a metallic system (alloys, intermetallics)."""
    return all(e not in NON_METALS for e in elements)


def reduce_counts(counts: dict[str, int]) -> dict[str, int]:
    """Element counts divided by their greatest common divisor (``Ti2O4`` -> ``TiO2``)."""
    divisor = gcd(*counts.values())
    return {el: n // divisor for el, n in counts.items()}


def parse_composition(formula: str) -> dict[str, int]:
    """Parse a formula such as ``TiO2`` into reduced element counts ``{'Ti': 1, 'O': 2}``.

    Raises
    ------
    ValueError
        Unknown element, malformed or physically impossible formula; the message names the fix.
    """
    text = formula.strip() if isinstance(formula, str) else ""
    if not text:
        raise ValueError("composition is empty; write a formula such as TiO2 or Cu")
    if _TOKEN.sub("", text):
        raise ValueError(
            f"'{formula}' is not a formula; write element symbols with counts, e.g. TiO2, SrTiO3"
        )
    counts: dict[str, int] = {}
    for symbol, number in _TOKEN.findall(text):
        if symbol not in atomic_numbers or symbol == "X":
            raise ValueError(
                f"unknown element '{symbol}' in '{formula}'; use chemical symbols (case matters: Co, not CO)"
            )
        if atomic_numbers[symbol] > MAX_Z:
            raise ValueError(f"element '{symbol}' (Z > {MAX_Z}) is not supported")
        n = int(number) if number else 1
        if n == 0:
            raise ValueError(f"'{formula}' gives {symbol} a count of 0; remove it or give a count >= 1")
        counts[symbol] = counts.get(symbol, 0) + n
    if len(counts) > MAX_ELEMENTS:
        raise ValueError(
            f"'{formula}' has {len(counts)} elements; at most {MAX_ELEMENTS} are supported"
        )
    reduced = reduce_counts(counts)
    if sum(reduced.values()) > MAX_FORMULA_ATOMS:
        raise ValueError(
            f"'{formula}' has {sum(reduced.values())} atoms per formula unit; at most "
            f"{MAX_FORMULA_ATOMS} fit a DFT-sized cell. Give structure files under seeds.files instead"
        )
    return reduced
