"""Exploration strategies: each makes one new structure from a start, or ``None`` when it does
not apply (an antisite in an elemental solid, a slab that would be too large).

Every strategy returns ``(atoms, provenance)``; provenance says what was done (the generator
name plus its parameters), so the dataset records how each structure came about. No returned
structure has two atoms closer than ``MIN_DISTANCE_FACTOR`` times their covalent bond length.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import surface
from ase.data import covalent_radii
from ase.geometry import get_distances
from ase.neighborlist import neighbor_list

from pyacemaker.composition import NON_METALS
from pyacemaker.structures import bare, standardized

MIN_DISTANCE_FACTOR = 0.6  # of the sum of covalent radii: closer pairs are unphysical here
SLAB_MILLER = ((1, 0, 0), (1, 1, 0), (1, 1, 1))
SLAB_VACUUM = 5.0  # Angstrom on each side: a 10 Angstrom gap, beyond any ACE cutoff (at most 7)
INTERSTITIAL_TRIALS = 200

Result = tuple[Atoms, dict[str, Any]] | None


def physical(atoms: Atoms, factor: float = MIN_DISTANCE_FACTOR) -> bool:
    """No two atoms closer than ``factor`` times the sum of their covalent radii."""
    radii = covalent_radii[atoms.numbers]
    i, j, d = neighbor_list("ijd", atoms, float(2 * factor * radii.max()))
    return bool(np.all(d >= factor * (radii[i] + radii[j])))


def rattle(atoms: Atoms, rng: np.random.Generator, stdev: float) -> Result:
    """Gaussian displacements of ``stdev`` Angstrom."""
    out = bare(atoms)
    out.positions += rng.normal(0.0, stdev, out.positions.shape)
    return out, {"generator": "rattle", "stdev": stdev}


def strain(atoms: Atoms, rng: np.random.Generator, max_strain: float, stdev: float) -> Result:
    """A random volume (isotropic) or shear (traceless symmetric) strain up to ``max_strain``,
    plus a rattle of ``stdev / 2``."""
    kind = "volume" if rng.random() < 0.5 else "shear"
    if kind == "volume":
        eps = np.eye(3) * rng.uniform(-max_strain, max_strain)
    else:
        eps = rng.uniform(-max_strain, max_strain, (3, 3))
        eps = (eps + eps.T) / 2
        eps -= np.eye(3) * np.trace(eps) / 3
    out = bare(atoms)
    out.set_cell(out.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    out.positions += rng.normal(0.0, stdev / 2, out.positions.shape)
    return out, {"generator": "strain", "kind": kind, "strain": np.round(eps, 5).tolist()}


def vacancy(atoms: Atoms, rng: np.random.Generator, stdev: float = 0.0) -> Result:
    """One atom removed, the rest rattled by ``stdev`` (symmetry-equivalent vacancies of a
    perfect crystal would otherwise be the same structure)."""
    if len(atoms) < 2:
        return None
    index = int(rng.integers(len(atoms)))
    out = bare(atoms)
    symbol = out[index].symbol
    del out[index]
    out.positions += rng.normal(0.0, stdev, out.positions.shape)
    return out, {"generator": "vacancy", "removed": symbol}


def interstitial(atoms: Atoms, rng: np.random.Generator, stdev: float = 0.0) -> Result:
    """One extra atom (a species of the start) at the most open of random trial points, all
    rattled by ``stdev``."""
    symbol = str(rng.choice(sorted(set(atoms.get_chemical_symbols()))))
    trials = rng.random((INTERSTITIAL_TRIALS, 3)) @ atoms.cell.array
    _, distances = get_distances(trials, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    nearest = distances.min(axis=1)  # to the nearest host atom, periodic images included
    out = bare(atoms)
    out.append(symbol)
    out.positions[-1] = trials[int(np.argmax(nearest))]
    out.positions += rng.normal(0.0, stdev, out.positions.shape)
    return out, {"generator": "interstitial", "added": symbol}


def exchangeable_pairs(elements: list[str]) -> list[tuple[str, str]]:
    """Species pairs whose exchange is physical: both metals or both non-metals (a cation on an
    anion site, as Ti on O in TiO2, is not)."""
    return [(a, b) for k, a in enumerate(sorted(elements)) for b in sorted(elements)[k + 1:]
            if (a in NON_METALS) == (b in NON_METALS)]


def antisite(atoms: Atoms, rng: np.random.Generator, stdev: float = 0.0) -> Result:
    """Two atoms of exchangeable species (see ``exchangeable_pairs``) exchanged, all rattled by
    ``stdev``."""
    symbols = np.array(atoms.get_chemical_symbols())
    pairs = exchangeable_pairs(sorted(set(symbols)))
    if not pairs:
        return None
    a, b = pairs[int(rng.integers(len(pairs)))]
    i = int(rng.choice(np.flatnonzero(symbols == a)))
    j = int(rng.choice(np.flatnonzero(symbols == b)))
    out = bare(atoms)
    out.positions[[i, j]] = out.positions[[j, i]]
    out.positions += rng.normal(0.0, stdev, out.positions.shape)
    return out, {"generator": "antisite", "exchanged": f"{a}-{b}"}


def slab(atoms: Atoms, rng: np.random.Generator, max_atoms: int, min_width: float = 0.0,
         stdev: float = 0.0) -> Result:
    """A low-index slab with vacuum on both sides, periodic in all directions (pyace needs fully
    periodic cells), rattled by ``stdev``. The Miller index refers to the conventional cell;
    the slab is cut from the primitive cell, so its in-plane cell is the smallest the plane
    allows, repeated to ``min_width`` Angstrom in plane. As many layers as fit in ``max_atoms``
    (at most 4, at least 2)."""
    miller = SLAB_MILLER[int(rng.integers(len(SLAB_MILLER)))]
    conventional = conventional_cell(atoms)
    lattice, indices = conventional, miller
    primitive = standardized(conventional, to_primitive=True)
    if primitive is not None and len(primitive) < len(conventional):
        lattice, indices = primitive, primitive_miller(primitive, conventional, miller)
    one = surface(lattice, indices, 1, vacuum=None)
    a, b = one.cell.array[:2]
    area = np.linalg.norm(np.cross(a, b))
    in_plane = [max(1, math.ceil(min_width * np.linalg.norm(v) / area - 1e-9)) for v in (b, a)]
    per_layer = len(one) * in_plane[0] * in_plane[1]
    layers = min(4, max_atoms // per_layer)
    if layers < 2:
        return None
    out = bare(surface(lattice, indices, layers, vacuum=SLAB_VACUUM, periodic=True)
               .repeat((*in_plane, 1)))
    out.pbc = True
    out.positions += rng.normal(0.0, stdev, out.positions.shape)
    return out, {"generator": "surface", "miller": list(miller), "layers": layers}


def primitive_miller(primitive: Atoms, conventional: Atoms,
                     miller: tuple[int, int, int]) -> tuple[int, int, int]:
    """The Miller index of the conventional cell's plane ``miller`` in the basis of the
    ``primitive`` cell of the same lattice (smallest integers)."""
    to_primitive = primitive.cell.array @ np.linalg.inv(conventional.cell.array)
    scaled = [Fraction(float(x)).limit_denominator(12) for x in to_primitive @ np.array(miller)]
    common = math.lcm(*(f.denominator for f in scaled))
    whole = [int(f * common) for f in scaled]
    divisor = math.gcd(*whole)
    return tuple(w // divisor for w in whole)


def conventional_cell(atoms: Atoms) -> Atoms:
    """The standard conventional cell of a (possibly repeated) crystal, found by spglib; the
    structure itself when spglib finds no symmetry."""
    found = standardized(atoms, to_primitive=False)
    return found if found is not None and len(found) < len(atoms) else bare(atoms)


def swaps(atoms: Atoms, rng: np.random.Generator, energy: Callable[[Atoms], float],
          temperature_k: float, steps: int) -> Result:
    """Metropolis Monte Carlo of exchanges between atoms of exchangeable species at
    ``temperature_k``, with ``energy`` (eV) from the current potential."""
    pairs = {frozenset(p) for p in exchangeable_pairs(sorted(set(atoms.get_chemical_symbols())))}
    if not pairs:
        return None
    kt = 8.617333e-5 * temperature_k
    current, e_current, accepted = bare(atoms), energy(atoms), 0
    symbols = np.array(current.get_chemical_symbols())
    for _ in range(steps):
        i, j = rng.choice(len(current), 2, replace=False)
        if frozenset((symbols[i], symbols[j])) not in pairs:
            continue
        trial = bare(current)
        trial.positions[[i, j]] = trial.positions[[j, i]]
        e_trial = energy(trial)
        if e_trial <= e_current or rng.random() < np.exp(-(e_trial - e_current) / kt):
            current, e_current, accepted = trial, e_trial, accepted + 1
    return current, {"generator": "swap", "temperature_K": temperature_k, "steps": steps,
                     "accepted": accepted}
