"""A fitted potential on disk (ACE .yaml/.yace, active set .asi, ZBL and reference energies)
and its ASE calculator: ACE + ZBL + per-element reference energies, with per-atom gamma."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from pydantic import BaseModel, Field

from pyacemaker.timing import engine_call
from pyacemaker.training.baseline import ZBLCalculator

META_FILE = "potential.json"


class Potential(BaseModel):
    """Files and settings of one fitted ``ACE + ZBL`` potential (paths inside ``folder``)."""

    folder: Path
    elements: list[str] = Field(description="element symbols, LAMMPS type order")
    cutoff: float = Field(description="ACE cutoff, Angstrom")
    zbl_inner: float = Field(description="Angstrom")
    zbl_outer: float = Field(description="Angstrom")
    reference_energies: dict[str, float] = Field(description="eV per atom of each element")
    functions_per_element: int
    radial_basis: str = Field("SBessel", description="pyace radial basis of the ACE part")
    gamma_functions_per_element: int | None = Field(
        None, description="size of the basis (the potential's cutoff and radial functions) whose "
        "active set gives the extrapolation grade; None: the potential's own basis")
    kind: str = Field("linear", description="linear (pyace) or nonlinear (pacemaker)")

    @property
    def yaml(self) -> Path:
        return self.folder / "potential.yaml"

    @property
    def yace(self) -> Path:
        return self.folder / "potential.yace"

    @property
    def asi(self) -> Path:
        """The active set (inverse) of ``gamma_yaml``'s basis."""
        return self.folder / "potential.asi"

    @property
    def gamma_yaml(self) -> Path:
        """The B-basis the extrapolation grade is computed with: ``gamma.yaml`` (the potential's
        cutoff and radial functions at the size γ's rule gives, coefficients zero) when that is
        not the potential's size, else the potential's own ``.yaml``."""
        return self.folder / "gamma.yaml" if self.gamma_functions_per_element else self.yaml

    def save(self) -> None:
        """Write ``potential.json`` (the folder itself is not stored: files travel together)."""
        (self.folder / META_FILE).write_text(self.model_dump_json(indent=2, exclude={"folder"}))

    @classmethod
    def load(cls, folder: Path | str) -> Potential:
        folder = Path(folder)
        data = json.loads((folder / META_FILE).read_text())
        data["folder"] = folder
        return cls.model_validate(data)

    def files(self) -> dict[str, bytes]:
        """The files a task on another machine needs, by name (the metadata, ``.yaml``,
        ``.yace``, ``.asi`` and ``gamma.yaml`` when there is one)."""
        paths = (self.folder / META_FILE, self.yaml, self.yace, self.asi, self.gamma_yaml)
        return {path.name: path.read_bytes() for path in paths if path.is_file()}

    @classmethod
    def from_files(cls, files: dict[str, bytes], folder: Path) -> Potential:
        """The potential written from ``files`` (see ``files``) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (folder / Path(name).name).write_bytes(content)
        return cls.load(folder)

    def calculator(self, with_gamma: bool = True) -> AceZblCalculator:
        """ASE calculator of the full model; ``with_gamma`` loads the active set."""
        return AceZblCalculator(self, with_gamma)


class AceZblCalculator(Calculator):
    """Energy (eV), forces (eV/Angstrom), stress (eV/Angstrom^3) of ACE + ZBL + references.

    ``results['gamma']`` holds the per-atom extrapolation grade, shape ``(n_atoms,)``.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "gamma"]

    def __init__(self, potential: Potential, with_gamma: bool = True) -> None:
        super().__init__()
        from pyace import PyACECalculator

        self.potential = potential
        with engine_call():  # pyace builds its evaluator (splines) here
            self.ace = PyACECalculator(str(potential.yaml))
            self.grader = None  # the calculator whose results hold gamma
            if with_gamma:
                separate = potential.gamma_yaml != potential.yaml
                self.grader = PyACECalculator(str(potential.gamma_yaml)) if separate else self.ace
                self.grader.set_active_set(str(potential.asi))
        self.zbl = ZBLCalculator(potential.elements, potential.zbl_inner, potential.zbl_outer)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        parts = [self.ace, self.zbl]
        with engine_call():
            self.ace.calculate(self.atoms, ["energy", "forces", "stress"], all_changes)
            if self.grader is not None and self.grader is not self.ace:
                self.grader.calculate(self.atoms, ["energy"], all_changes)
        self.zbl.calculate(self.atoms, ["energy", "forces", "stress"], all_changes)
        offset = sum(self.potential.reference_energies[s] for s in self.atoms.get_chemical_symbols())
        energy = sum(c.results["energy"] for c in parts) + offset
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": sum(c.results["forces"] for c in parts),
            "stress": sum(c.results["stress"] for c in parts),
            "gamma": np.asarray(self.grader.results["gamma"]) if self.grader is not None
            else np.zeros(len(self.atoms)),
        }
