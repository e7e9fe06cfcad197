"""Starting structures: user files, or prototypes matched to the composition plus random
symmetric crystals (pyxtal); periodic 3D cells repeated to ``min_cell_width`` (Angstrom)."""

from __future__ import annotations

import logging
from math import ceil
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.build import niggli_reduce
from ase.neighborlist import neighbor_list

from pyacemaker.composition import parse_composition, reduce_counts
from pyacemaker.config import SeedsConfig
from pyacemaker.errors import ConfigError
from pyacemaker.prototypes import covalent_radius, prototype_crystals, prototype_names, scale_to_radii
from pyacemaker.structures import standardized

logger = logging.getLogger(__name__)

MIN_DISTANCE_FACTOR = 0.5  # atoms closer than this times the sum of covalent radii are rejected
MIN_RANDOM_ATOMS = 4  # formula units of random crystals: smallest count reaching this
MAX_RANDOM_ATTEMPTS = 30  # space groups tried before giving up on random crystals
# Angstrom: no cell of a user's file is thinner (a crystal's thinnest periodic width is ~2 A);
# thinner cells would put atoms on their own images and the distance check would take minutes
MIN_CELL_WIDTH = 1.0
MAX_CELL_WIDTH = 1e4  # Angstrom (1 micrometre): wider is a unit or POSCAR scale-factor mistake
NEIGHBOR_BINS = 1000  # ASE's default (1e6) takes seconds on a cell of 1000 A with a few atoms


def _clean(atoms: Atoms) -> Atoms:
    """Fresh periodic copy with symbols, positions and cell only (no info, calc, constraints)."""
    return Atoms(atoms.get_chemical_symbols(), positions=atoms.positions.copy(),
                 cell=atoms.cell.array.copy(), pbc=True)


def cell_widths(atoms: Atoms) -> np.ndarray:
    """Perpendicular widths ``V / |a_j x a_k|`` of the cell, Angstrom."""
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    return np.array([volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
                     for i in range(3)])


def supercell_for_width(atoms: Atoms, min_width: float, max_atoms: int) -> Atoms:
    """Repeat ``atoms`` until every cell width is >= ``min_width`` (Angstrom).

    If the full repetition would exceed ``max_atoms``, the narrowest direction that still
    fits is repeated one step at a time. The input is not modified.
    """
    widths = cell_widths(atoms)
    full = np.maximum(1, np.ceil(min_width / widths - 1e-9)).astype(int)
    if len(atoms) * int(np.prod(full)) <= max_atoms:
        return atoms.repeat(tuple(int(n) for n in full))
    reps = np.ones(3, dtype=int)
    while True:
        grown = [i for i in np.argsort(reps * widths, kind="stable")
                 if reps[i] * widths[i] < min_width
                 and len(atoms) * np.prod(reps) // reps[i] * (reps[i] + 1) <= max_atoms]
        if not grown:
            break
        reps[grown[0]] += 1
    return atoms.repeat(tuple(int(n) for n in reps))


def _primitive(atoms: Atoms) -> Atoms | None:
    """Niggli-reduced primitive cell (spglib), or None if ``atoms`` is already primitive."""
    prim = standardized(atoms, to_primitive=True)
    if prim is None or len(prim) == len(atoms):
        return None
    niggli_reduce(prim)
    return prim


def fit_cell(origin: str, atoms: Atoms, settings: SeedsConfig, allow_primitive: bool) -> Atoms:
    """Supercell reaching ``min_cell_width``; the primitive cell is used if that does better:
    wider, or fewer atoms when the cell as given already exceeds ``max_atoms``."""
    width, limit = settings.min_cell_width, settings.max_atoms
    best = supercell_for_width(atoms, width, limit)
    too_big = len(best) > limit
    prim = _primitive(atoms) if allow_primitive and (cell_widths(best).min() < width or too_big) else None
    if prim is not None:
        other = supercell_for_width(prim, width, limit)
        wider = cell_widths(other).min() > cell_widths(best).min()
        best = other if wider or (too_big and len(other) < len(best)) else best
    if cell_widths(best).min() < width:
        logger.warning("seed %s: cell widths %s A stay below %.1f A within max_atoms=%d",
                       origin, np.round(cell_widths(best), 2), width, limit)
    return best


def _too_close(atoms: Atoms) -> str | None:
    """Describe the first pair closer than 0.5 x (sum of covalent radii), or None."""
    radii = np.array([covalent_radius(s) for s in atoms.get_chemical_symbols()])
    i, j, d = neighbor_list("ijd", atoms, float(radii.max()), max_nbins=NEIGHBOR_BINS)
    bad = np.nonzero(d < MIN_DISTANCE_FACTOR * (radii[i] + radii[j]))[0]
    if bad.size == 0:
        return None
    k = bad[0]
    sym = atoms.get_chemical_symbols()
    return f"atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) are {d[k]:.2f} A apart"


def _formula(composition: dict[str, int]) -> str:
    return "".join(f"{el}{n if n > 1 else ''}" for el, n in composition.items())


def check_seeds(settings: SeedsConfig, composition: str) -> None:
    """Start-up checks of the seeds settings: the files exist and the prototypes are available
    for ``composition`` (a formula, e.g. TiO2).

    Raises
    ------
    ConfigError
        Naming the field, what is wrong and the choices.
    """
    for i, file in enumerate(settings.files):
        if not file.is_file():
            raise ConfigError(
                f"field 'seeds.files.{i}': file '{file}' not found "
                "(relative paths are relative to the current directory)"
            )
    if not settings.prototypes:
        return
    known = prototype_names(parse_composition(composition))
    unknown = sorted(set(settings.prototypes) - set(known))
    if unknown:
        raise ConfigError(
            f"field 'seeds.prototypes': {', '.join(unknown)} not available for "
            f"{composition}; choose from {', '.join(known) or 'none (use seeds.files)'}"
        )


def random_crystals(composition: dict[str, int], n: int, seed: int) -> list[tuple[str, Atoms]]:
    """Up to ``n`` random symmetric crystals in distinct space groups, reproducible from seed."""
    from pyxtal import pyxtal  # slow import, only needed here

    rng = np.random.default_rng(seed)
    species = list(composition)
    units = ceil(MIN_RANDOM_ATOMS / sum(composition.values()))
    num_ions = [composition[el] * units for el in species]
    found: list[tuple[str, Atoms]] = []
    for group in rng.permutation(np.arange(1, 231))[:MAX_RANDOM_ATTEMPTS]:
        if len(found) == n:
            break
        xtal = pyxtal()
        try:
            xtal.from_random(3, int(group), species, num_ions, max_count=5,
                             random_state=int(rng.integers(2**31)))
            atoms = scale_to_radii(_clean(xtal.to_ase()), unlike_only=False)
        except Exception as err:  # pyxtal raises many types for incompatible groups
            logger.debug("pyxtal space group %d failed: %s", group, err)
            continue
        problem = _too_close(atoms)
        if problem:
            logger.info("dropped random crystal in space group %d: %s", group, problem)
        else:
            found.append((f"random:{xtal.group.symbol}", atoms))
    if len(found) < n:
        logger.warning("only %d of %d random crystals could be built", len(found), n)
    return found


def read_structure_file(path: Path, composition: dict[str, int],
                        field: str) -> list[tuple[str, Atoms]]:
    """(origin, structure) for every structure in a user's file: periodic 3D, elements of
    ``composition`` only, no overlapping atoms.

    Raises
    ------
    ConfigError
        Naming ``field`` and the fix, when the file cannot be read or a structure is unusable.
    """
    try:
        frames = ase.io.read(path, index=":")
    except Exception as err:
        raise ConfigError(f"{field}: cannot read '{path}' ({type(err).__name__}: {err}); check "
                          "that the file exists and its format: cif, POSCAR/CONTCAR or extxyz"
                          ) from err
    if not frames:
        raise ConfigError(f"{field}: '{path}' holds no structure; give a cif, POSCAR or extxyz")
    seeds = []
    for k, atoms in enumerate(frames):
        where = f"{field}: '{path}'" + (f" structure {k}" if len(frames) > 1 else "")
        problem = _unusable(atoms, composition)
        if problem:
            raise ConfigError(f"{where} {problem}")
        seeds.append((f"file:{path.name}" + (f"@{k}" if len(frames) > 1 else ""), _clean(atoms)))
    return seeds


def _unusable(atoms: Atoms, composition: dict[str, int]) -> str | None:
    """What makes a structure from a user's file unusable as a seed, with the fix; None if
    nothing. The checks run cheapest first: the distance check's cost grows as the cube of
    1 / (thinnest cell width)."""
    if len(atoms) == 0:
        return "holds no atoms; give a structure with atoms"
    extra = sorted(set(atoms.get_chemical_symbols()) - set(composition))
    if extra:
        return (f"contains element {extra[0]} not in the composition {_formula(composition)}; "
                "fix the file or the composition")
    if not (np.all(np.isfinite(atoms.cell.array)) and np.all(np.isfinite(atoms.positions))):
        return "has a NaN or infinite lattice vector or position; fix the file"
    if not all(atoms.pbc) or np.linalg.det(atoms.cell.array) == 0.0:
        return ("has no periodic 3D cell; a periodic 3D cell is needed (give lattice vectors, "
                "e.g. a POSCAR or extxyz with Lattice)")
    widths = cell_widths(atoms)
    if not np.all(widths >= MIN_CELL_WIDTH):
        return (f"has a cell only {widths.min():.3g} A wide (widths {np.round(widths, 3)} A), "
                f"below {MIN_CELL_WIDTH} A: atoms would sit on their own periodic images; check "
                "the lattice vectors (in Angstrom)")
    if widths.max() > MAX_CELL_WIDTH:
        return (f"has a cell {widths.max():.3g} A wide, above {MAX_CELL_WIDTH:g} A; check the "
                "units (Angstrom) and a POSCAR's scale factor")
    problem = _too_close(_clean(atoms))
    if problem:
        return f"has {problem}, closer than half the sum of covalent radii"
    return None


def seed_structures(composition: dict[str, int], settings: SeedsConfig,
                    seed: int) -> list[tuple[str, Atoms]]:
    """Starting structures as ``(origin, atoms)`` pairs, deterministic for a given ``seed``.

    ``composition`` holds element counts, e.g. ``{"Ti": 1, "O": 2}``; ``settings`` is the
    ``seeds`` section (min_cell_width in Angstrom). Origins look like ``"prototype:rutile"``,
    ``"random:P42/mnm"`` or ``"file:POSCAR"``; the atoms are fresh periodic cells repeated to
    ``min_cell_width`` within ``max_atoms``.

    Raises
    ------
    ConfigError
        Unreadable or invalid user file, or no structure could be made for the composition.
    """
    composition = reduce_counts(composition)
    if settings.files:
        seeds = [s for i, path in enumerate(settings.files)
                 for s in read_structure_file(Path(path), composition, f"seeds.files.{i}")]
    else:
        seeds = []
        wanted = set(settings.prototypes)
        for origin, atoms in prototype_crystals(composition):
            if wanted and origin.removeprefix("prototype:") not in wanted:
                continue
            problem = _too_close(atoms)
            if problem:
                logger.warning("dropped %s: %s", origin, problem)
            else:
                seeds.append((origin, _clean(atoms)))
        if not seeds:
            seeds = random_crystals(composition, settings.n_random, seed)
    if not seeds:
        raise ConfigError(f"no seed structure could be built for {_formula(composition)}; "
                          "give structure files under seeds.files")
    return [(origin, fit_cell(origin, atoms, settings, not origin.startswith("file:")))
            for origin, atoms in seeds]
