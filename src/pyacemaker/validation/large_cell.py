"""The large-cell test: the potential's errors on MD of a cell the size of real use.

The held-out set holds small periodic cells (6-72 atoms), where an atom sees its own periodic
images inside the cutoff: they hide both the oracle's reach and the potential's errors (the
TiO2 quickstart: 0.175 eV/Å on its held-out cells, 0.29 eV/Å on CHGNet MD of a 270-atom rutile
cell at 600 K). Here the test structure is repeated until every face-to-face width exceeds
twice the potential's cutoff, run with Langevin MD by the oracle itself (a cheap calculator
engine) at a near-equilibrium temperature, and a few frames spaced apart are labelled by it.
The frames are for this test only: never in the dataset, not counted against the label budget.
They are cached in ``<workdir>/validation/large_cell.extxyz`` under a key over the supercell,
the oracle's settings and the MD settings, so later validations and resumed runs reuse them.
A new cutoff (a new supercell) computes them again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md import velocitydistribution
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary
from pydantic import BaseModel, Field

from pyacemaker.config import OracleConfig, TargetsConfig, ValidationConfig
from pyacemaker.oracle.registry import engine_names
from pyacemaker.progress import progress_bar, task_callback
from pyacemaker.records import Errors
from pyacemaker.structures.policy import melting_point
from pyacemaker.timing import engine_call
from pyacemaker.training.metrics import held_out_metrics
from pyacemaker.validation.check import Check
from pyacemaker.validation.phonons import supercell_matrix
from pyacemaker.workdir import write_file

FORMAT = 2  # bump when the frames' computation changes
MELTING_FRACTION = 0.3  # default temperature: between the policy's first two MD temperatures
EQUILIBRATION_STEPS = 20  # Langevin steps before the first frame, from velocities at 2 T
FRAME_SPACING = 5  # steps between frames: 56 oracle calls for 8 frames (CHGNet, 270 atoms:
# a few seconds each on 2 cores), once per run
FRICTION_PER_FS = 0.05  # Langevin friction, 1/fs: thermalised within ~20 fs
WIDTH_MARGIN = 0.1  # Angstrom beyond twice the cutoff
SEED = 31  # of the initial velocities and the Langevin noise
GENERATOR = "large cell md"
# ASE 3.29 renamed MaxwellBoltzmannDistribution (same arguments); the project allows ase>=3.23
_thermalize = getattr(velocitydistribution, "thermalize_momenta",
                      velocitydistribution.MaxwellBoltzmannDistribution)


class LargeCellResult(BaseModel):
    """The potential's errors on the oracle's MD frames of one large cell."""

    n_atoms: int = Field(description="atoms in the large cell")
    n_frames: int
    supercell: list[int] = Field(description="repetitions of the test structure along a, b, c")
    width: float = Field(description="smallest face-to-face width of the cell, Angstrom")
    cutoff: float = Field(description="the potential's cutoff, Angstrom")
    temperature_k: float = Field(description="Langevin temperature, K")
    kinetic_temperature_k: float = Field(description="mean kinetic temperature of the frames, K")
    errors: Errors = Field(description="over the frames: energies meV/atom, forces eV/Angstrom, "
                                       "stress GPa")
    max_gamma: float = Field(description="largest per-atom extrapolation grade over the frames")


def large_supercell(structure: Atoms, cutoff: float) -> Atoms:
    """``structure`` repeated (diagonally) until each face-to-face width exceeds ``2 * cutoff``
    (Angstrom) by ``WIDTH_MARGIN``: no atom sees its own periodic image within its cutoff
    sphere. ``structure`` is not modified; ``info["supercell"]`` holds the repetitions."""
    repeats = np.diag(supercell_matrix(structure, 2.0 * cutoff + WIDTH_MARGIN)).tolist()
    supercell = structure.copy()
    supercell.calc = None
    supercell = supercell.repeat(repeats)
    supercell.info = {"supercell": repeats}
    return supercell


def cell_width(atoms: Atoms) -> float:
    """Smallest face-to-face width of ``atoms``' cell, Angstrom."""
    return float(1.0 / np.linalg.norm(atoms.cell.reciprocal(), axis=1).max())


def default_temperature(atoms: Atoms) -> float:
    """K: ``MELTING_FRACTION`` of the estimated melting point (``policy.melting_point``), to the
    nearest 50 K: 600 K for TiO2 (Ti melts at 1941 K), 400 K for Cu. Warm enough to reach the
    anharmonic near-equilibrium bulk the targets are for, well below melting."""
    melting, _ = melting_point(sorted(set(atoms.get_chemical_symbols())))
    return float(50 * round(MELTING_FRACTION * melting / 50))


def md_frames(supercell: Atoms, calc: Calculator, temperature_k: float, n_frames: int,
              timestep_fs: float, progress: Callable[[int, int], None] | None = None,
              seed: int = SEED) -> list[Atoms]:
    """``n_frames`` labelled frames of Langevin MD of ``supercell`` with ``calc``.

    Velocities start from a Maxwell-Boltzmann distribution at twice ``temperature_k`` (half goes
    into potential energy at once) and the thermostat (friction ``FRICTION_PER_FS``) settles
    it over ``EQUILIBRATION_STEPS`` steps of ``timestep_fs`` (fs); then a frame every
    ``FRAME_SPACING`` steps. Each frame carries ``calc``'s energy (eV), forces (eV/Angstrom)
    and stress (eV/Angstrom^3, when ``calc`` has it) as a SinglePointCalculator, and in
    ``info`` its step, ``temperature_k`` and ``kinetic_temperature_k`` (K), beside
    ``supercell``'s own info. Seeded by ``seed``: the same inputs give the same frames.
    ``progress(done, total)`` follows the steps. ``supercell`` is not modified.
    """
    rng = np.random.default_rng(seed)
    atoms = supercell.copy()
    atoms.calc = calc
    _thermalize(atoms, temperature_K=2 * temperature_k, rng=rng)
    Stationary(atoms)
    dynamics = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_k,
                        friction=FRICTION_PER_FS / units.fs, rng=rng, fixcm=False)
    total = EQUILIBRATION_STEPS + FRAME_SPACING * (n_frames - 1)
    frames = []
    for step in range(total + 1):
        if step:
            dynamics.run(1)
        if progress is not None:
            progress(step, total)
        if step >= EQUILIBRATION_STEPS and (step - EQUILIBRATION_STEPS) % FRAME_SPACING == 0:
            frames.append(_labelled_frame(atoms, step, temperature_k))
    return frames


def _labelled_frame(atoms: Atoms, step: int, temperature_k: float) -> Atoms:
    """A copy of ``atoms`` without velocities, its calculator's results attached."""
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    with contextlib.suppress(PropertyNotImplementedError):
        results["stress"] = atoms.get_stress()
    frame = atoms.copy()
    frame.arrays.pop("momenta", None)
    frame.info.update(step=step, temperature_k=temperature_k, generator=GENERATOR,
                      kinetic_temperature_k=float(atoms.get_temperature()))
    frame.calc = SinglePointCalculator(frame, **results)
    return frame


def frames_key(supercell: Atoms, oracle: OracleConfig, temperature_k: float, n_frames: int,
               timestep_fs: float) -> str:
    """SHA-256 of the supercell, the oracle's settings (without ``workers``) and the MD
    settings: what the cached frames depend on."""
    payload = {
        "format": FORMAT,
        "md": [temperature_k, n_frames, timestep_fs, EQUILIBRATION_STEPS, FRAME_SPACING,
               FRICTION_PER_FS, SEED],
        "structure": {"numbers": supercell.numbers.tolist(), "pbc": supercell.pbc.tolist(),
                      "cell": np.round(supercell.cell.array, 8).tolist(),
                      "positions": np.round(supercell.get_scaled_positions(wrap=False), 8).tolist()},
        "oracle": oracle.model_dump(mode="json", exclude={"workers"}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def read_frames(path: Path, key: str) -> list[Atoms] | None:
    """The frames cached in ``path`` (extxyz) under ``key``, or None (no file, another key, or
    a file that does not read)."""
    if not path.is_file():
        return None
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception:  # noqa: BLE001 - a damaged cache is computed again, never trusted
        return None
    if not frames or any(f.info.get("key") != key for f in frames):
        return None
    return frames


def write_frames(path: Path, frames: Sequence[Atoms], key: str) -> None:
    """Store ``frames`` in ``path`` (extxyz, ``key`` in each frame's info), atomically."""
    buffer = io.StringIO()
    ase.io.write(buffer, [_keyed(frame, key) for frame in frames], format="extxyz")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, buffer.getvalue())


def _keyed(frame: Atoms, key: str) -> Atoms:
    """A copy of the labelled ``frame`` with ``key`` in its info."""
    copy = frame.copy()
    copy.info["key"] = key
    copy.calc = SinglePointCalculator(copy, **frame.calc.results)
    return copy


def large_cell_frames(structure: Atoms, cutoff: float, settings: ValidationConfig,
                      oracle: OracleConfig, build_oracle: Callable[[], Calculator | None],
                      path: Path, timestep_fs: float = 1.0,
                      show_progress: bool = True) -> list[Atoms] | str:
    """The oracle's labelled MD frames of ``structure`` made larger than twice ``cutoff``
    (Angstrom), read from ``path`` when cached under the same key, else computed with
    ``build_oracle()`` and cached; or why the test is not run (``settings.large_cell`` false,
    or an oracle without a calculator: DFT). ``timestep_fs`` is the MD time step (fs).

    Raises
    ------
    OSError
        ``path`` cannot be written (a full disk): what was there is intact.
    """
    if settings.large_cell is False:
        return "switched off (validation.large_cell: false)"
    supercell = large_supercell(structure, cutoff)
    temperature = settings.large_cell_temperature or default_temperature(structure)
    key = frames_key(supercell, oracle, temperature, settings.large_cell_frames, timestep_fs)
    frames = read_frames(path, key)
    if frames is not None:
        return frames
    calc = build_oracle()
    if calc is None:
        return (f"the oracle ({oracle.engine}) cannot run MD of a {len(supercell)}-atom cell here: "
                f"the large-cell test needs a calculator engine ({engine_names(cheap_only=True)})")
    with progress_bar(show_progress, transient=True) as progress, engine_call():
        update = task_callback(progress, f"large cell: oracle MD of {len(supercell)} atoms")
        frames = md_frames(supercell, calc, temperature, settings.large_cell_frames, timestep_fs,
                           update)
    write_frames(path, frames, key)
    return read_frames(path, key)  # as later validations will see them (extxyz rounds)


def large_cell_result(frames: Sequence[Atoms], calc: Calculator, cutoff: float) -> LargeCellResult:
    """Errors of ``calc`` (the potential, with or without ``gamma``) on the labelled ``frames``."""
    metrics = held_out_metrics(list(frames), calc)
    first = frames[0]
    return LargeCellResult(
        n_atoms=len(first), n_frames=len(frames), cutoff=cutoff, width=cell_width(first),
        supercell=np.ravel(first.info.get("supercell", [1, 1, 1])).astype(int).tolist(),
        temperature_k=float(first.info.get("temperature_k", 0.0)),
        kinetic_temperature_k=float(np.mean([f.info.get("kinetic_temperature_k", 0.0)
                                             for f in frames])),
        errors=metrics.overall, max_gamma=float(max(metrics.max_gamma)))


def large_cell_checks(result: LargeCellResult | None, reason: str,
                      targets: TargetsConfig | None) -> list[Check]:
    """"large-cell energy RMSE" and "large-cell force RMSE" against the held-out targets; n/a
    with ``reason`` when there is no ``result``, or with no ``targets`` to grade against."""
    names = ("large-cell energy RMSE", "large-cell force RMSE")
    if result is None:
        return [Check(name=name, passed=None, value="not run", threshold="-", detail=reason)
                for name in names]
    e, f = result.errors.energy_rmse, result.errors.force_rmse
    detail = (f"oracle MD at {result.temperature_k:.0f} K of a {result.n_atoms}-atom cell "
              f"({'x'.join(map(str, result.supercell))}, width {result.width:.1f} Å > 2 × cutoff "
              f"{result.cutoff:g} Å), {result.n_frames} frames; max γ {result.max_gamma:.3g}")
    if targets is None:
        return [Check(name=names[0], passed=None, value=f"{e:.2f} meV/atom", threshold="-", detail=detail),
                Check(name=names[1], passed=None, value=f"{f:.4f} eV/Å", threshold="-", detail=detail)]
    return [
        Check(name=names[0], passed=targets.energy_met(e), value=f"{e:.2f} meV/atom",
              threshold=f"≤ {targets.energy_rmse_mev_per_atom:g} meV/atom", detail=detail),
        Check(name=names[1], passed=targets.force_met(f), value=f"{f:.4f} eV/Å",
              threshold=f"≤ {targets.force_rmse_ev_per_angstrom:g} eV/Å", detail=detail),
    ]


def grade_large_cell(large_cell: Sequence[Atoms] | str, calc: Calculator, cutoff: float,
                     targets: TargetsConfig | None) -> tuple[LargeCellResult | None, list[Check]]:
    """The result and checks of the large-cell test: ``large_cell`` holds the oracle's labelled
    frames (:func:`large_cell_frames`) or why there are none (the checks are then n/a)."""
    if isinstance(large_cell, str) or not large_cell:
        return None, large_cell_checks(None, large_cell or "no frames", targets)
    result = large_cell_result(large_cell, calc, cutoff)
    return result, large_cell_checks(result, "", targets)
