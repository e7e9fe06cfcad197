"""Prototype crystals for a composition (fcc/bcc/hcp for elements; rocksalt, rutile,
perovskite, corundum, ... by reduced stoichiometry), scaled to covalent radii (Angstrom)."""

from __future__ import annotations

from math import sqrt

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii, reference_states
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal

from pyacemaker.composition import reduce_counts


def covalent_radius(symbol: str) -> float:
    """Covalent radius in Angstrom."""
    return float(covalent_radii[atomic_numbers[symbol]])


def scale_to_radii(atoms: Atoms, unlike_only: bool = True) -> Atoms:
    """Scale the cell so the shortest distance, relative to the sum of covalent radii, equals
    that sum; over unlike-element pairs (the bonds of a prototype) when ``unlike_only`` and
    such pairs exist, else over all pairs."""
    sym = np.array(atoms.get_chemical_symbols())
    radii = np.array([covalent_radius(s) for s in sym])
    i, j, d = neighbor_list("ijd", atoms, float(atoms.cell.lengths().sum()))
    pairs = sym[i] != sym[j] if unlike_only and len(set(sym)) > 1 else np.ones(len(d), bool)
    ratio = np.min(d[pairs] / (radii[i] + radii[j])[pairs])
    atoms.set_cell(atoms.cell.array / ratio, scale_atoms=True)
    return atoms


def _bulk(name: str, structure: str, a: float = 4.0, **kwargs: float) -> Atoms:
    """``ase.build.bulk``, conventional cubic cell when that exists."""
    try:
        return bulk(name, structure, a=a, cubic=True, **kwargs)
    except (ValueError, RuntimeError):
        return bulk(name, structure, a=a, **kwargs)


def _element(symbol: str) -> list[tuple[str, Atoms]]:
    """ASE's reference crystal of an element (else fcc from the covalent radius), then the
    other close-packed and bcc lattices at the same nearest-neighbour distance."""
    state = reference_states[atomic_numbers[symbol]] or {}
    try:
        reference = state["symmetry"], _bulk(symbol, None, a=None)
        distance = float(neighbor_list("d", reference[1], 6.0).min())
    except (ValueError, KeyError, TypeError, RuntimeError):
        distance = 2.0 * covalent_radius(symbol)
        reference = "fcc", bulk(symbol, "fcc", a=distance * sqrt(2.0), cubic=True)
    lattices = {"fcc": lambda d: _bulk(symbol, "fcc", a=d * sqrt(2.0)),
                "bcc": lambda d: _bulk(symbol, "bcc", a=d * 2.0 / sqrt(3.0)),
                "hcp": lambda d: bulk(symbol, "hcp", a=d, covera=sqrt(8.0 / 3.0))}
    others = [(name, build(distance)) for name, build in lattices.items() if name != reference[0]]
    return [(f"prototype:{name}", atoms) for name, atoms in [reference, *others]]


def _compound(el: list[str], counts: tuple[int, ...]) -> dict[str, Atoms]:
    """Unscaled prototypes for reduced ``counts`` (ascending) of elements ``el`` (same order)."""
    if counts == (1, 1):
        ab = el[0] + el[1]
        return {"rocksalt": _bulk(ab, "rocksalt"), "zincblende": _bulk(ab, "zincblende"),
                "wurtzite": bulk(ab, "wurtzite", a=3.0, covera=sqrt(8.0 / 3.0)),
                "cesiumchloride": _bulk(ab, "cesiumchloride")}
    if counts == (1, 2):  # the count-1 element is the cation
        return {"rutile": crystal(el, basis=[(0, 0, 0), (0.305, 0.305, 0)], spacegroup=136,
                                  cellpar=[4.59, 4.59, 2.96, 90, 90, 90]),
                "fluorite": _bulk(el[0] + 2 * el[1], "fluorite", a=5.4)}
    if counts == (1, 1, 3):  # A site (12-fold) takes the larger of the two count-1 elements
        b, a = sorted(el[:2], key=covalent_radius)
        return {"perovskite": crystal([b, a, el[2]], spacegroup=221,
                                      basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0, 0)],
                                      cellpar=[3.9, 3.9, 3.9, 90, 90, 90])}
    if counts == (2, 3):
        return {"corundum": crystal(el, basis=[(0, 0, 0.352), (0.306, 0, 0.25)], spacegroup=167,
                                    cellpar=[4.76, 4.76, 12.99, 90, 90, 120])}
    return {}


def prototype_crystals(composition: dict[str, int]) -> list[tuple[str, Atoms]]:
    """Prototype crystals matched by reduced stoichiometry (empty list if none match)."""
    if len(composition) == 1:
        return _element(next(iter(composition)))
    order = sorted(composition, key=lambda el: composition[el])  # stable: formula order on ties
    built = _compound(order, tuple(composition[el] for el in order))
    return [(f"prototype:{name}", scale_to_radii(atoms)) for name, atoms in built.items()]


def prototype_names(composition: dict[str, int]) -> list[str]:
    """Names of the prototypes available for ``composition`` (e.g. ``["rutile", "fluorite"]``)."""
    return [origin.removeprefix("prototype:")
            for origin, _ in prototype_crystals(reduce_counts(composition))]
