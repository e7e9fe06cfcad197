"""ZBL baseline computed by LAMMPS ``pair_style zbl`` (the same numbers MD will use).

The ACE potential is fitted to reference minus this baseline, so ``ACE + ZBL`` reproduces
the reference and keeps atoms apart where no data exists.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lammps import Prism
from ase.data import atomic_masses, atomic_numbers
from ase.units import GPa

from pyacemaker.lammps_runtime import new_lammps

BAR_IN_EV_PER_A3 = 1e-4 * GPa  # 1 bar = 1e-4 GPa


def zbl_pair_commands(elements: list[str], inner: float, outer: float) -> list[str]:
    """``pair_style``/``pair_coeff`` lines for ZBL; LAMMPS type i is ``elements[i-1]``.

    Parameters
    ----------
    elements : element symbols in LAMMPS type order
    inner, outer : switching range in Angstrom
    """
    return [f"pair_style zbl {inner} {outer}", *zbl_pair_coeffs(elements)]


def zbl_pair_coeffs(elements: list[str], substyle: str = "") -> list[str]:
    """``pair_coeff i j [substyle] Zi Zj`` for every type pair (``substyle`` under hybrid)."""
    z = [atomic_numbers[e] for e in elements]
    prefix = f" {substyle}" if substyle else ""
    return [f"pair_coeff {i + 1} {j + 1}{prefix} {z[i]} {z[j]}"
            for i in range(len(z)) for j in range(i, len(z))]


class ZBLCalculator(Calculator):
    """ASE calculator for the ZBL baseline, evaluated by LAMMPS.

    Energy in eV, forces in eV/Angstrom (shape ``(n_atoms, 3)``), stress in eV/Angstrom^3
    (Voigt, ASE sign convention).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, elements: list[str], inner: float, outer: float) -> None:
        super().__init__()
        self.elements = list(elements)
        self.pair_commands = zbl_pair_commands(self.elements, inner, outer)
        self._lmp = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        energy, forces, stress = self._evaluate(self.atoms)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces, "stress": stress}

    def _evaluate(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
        if self._lmp is None:
            self._lmp = new_lammps()
        lmp = self._lmp
        prism = Prism(np.asarray(atoms.cell))
        lx, ly, lz, xy, xz, yz = (float(v) for v in prism.get_lammps_prism())
        lmp.command("clear")
        for line in (
            "units metal",
            "atom_style atomic",
            "atom_modify map array sort 0 0",
            "boundary p p p",
            f"region box prism 0 {lx!r} 0 {ly!r} 0 {lz!r} {xy!r} {xz!r} {yz!r} units box",
            f"create_box {len(self.elements)} box",
        ):
            lmp.command(line)
        for i, element in enumerate(self.elements):
            lmp.command(f"mass {i + 1} {atomic_masses[atomic_numbers[element]]}")
        types = [self.elements.index(s) + 1 for s in atoms.get_chemical_symbols()]
        positions = prism.vector_to_lammps(atoms.positions, wrap=True)
        lmp.create_atoms(len(atoms), list(range(1, len(atoms) + 1)), types,
                         positions.ravel().tolist())
        lmp.commands_list(self.pair_commands)
        lmp.command("compute virial all pressure NULL virial")
        lmp.command("thermo_style custom step pe")
        lmp.command("run 0")
        energy = float(lmp.get_thermo("pe"))
        ids = np.asarray(lmp.numpy.extract_atom("id")[: len(atoms)]).astype(int)
        forces_lmp = np.empty((len(atoms), 3))
        forces_lmp[ids - 1] = lmp.numpy.extract_atom("f")[: len(atoms)]
        forces = prism.vector_to_ase(forces_lmp)
        p = np.asarray(lmp.numpy.extract_compute("virial", 0, 1))  # xx yy zz xy xz yz, bar
        tensor = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
        tensor = -prism.tensor2_to_ase(tensor) * BAR_IN_EV_PER_A3
        stress = tensor[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        return energy, forces, stress

    def __del__(self) -> None:
        if self._lmp is not None:
            self._lmp.close()
