"""Linear ACE fit (pyace) on reference minus ZBL baseline, then the linear active set.

Targets: per-atom energy ``(E_ref - E_zbl - sum_i mu_{Z_i}) / N``, forces ``F_ref - F_zbl``
and per-atom virials ``(sigma_ref - sigma_zbl) V / N``; the per-element reference energies
``mu`` come from a least-squares fit of energies to composition, so the ACE part learns only
the interaction energy. pyace's design matrix has energy and force rows only: the virial rows
are the strain derivatives of the energy rows, by central differences.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from pyacemaker.config import TargetsConfig, TrainerConfig
from pyacemaker.dataset import to_pacemaker_dataframe
from pyacemaker.records import BasisSpec, FitResult
from pyacemaker.structures import bare, voigt_strained
from pyacemaker.timing import engine_call
from pyacemaker.training.baseline import ZBLCalculator
from pyacemaker.training.basis import (
    basis_config,
    choose_basis,
    gamma_basis,
    gamma_limit,
    size_limit,
    solve,
)
from pyacemaker.training.metrics import held_out_metrics, within_force_limit
from pyacemaker.training.potential import Potential
from pyacemaker.workdir import staged_folder

log = logging.getLogger(__name__)

STRAIN_STEP = 1e-4  # of the virial rows' central differences (exact to ~1e-6 eV/atom here)
FIT_FILE = "fit.json"
MAXVOL = {"tol": 1.001, "max_iters": 300}  # the active set's MaxVol, for .asi and pruning alike


def reference_energies(structures: list[Atoms], energies: np.ndarray,
                       elements: list[str]) -> dict[str, float]:
    """Per-element energies (eV/atom) by least squares of total energies on composition."""
    counts = np.array([[a.get_chemical_symbols().count(e) for e in elements] for a in structures],
                      dtype=float)
    mu, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {e: float(m) for e, m in zip(elements, mu, strict=True)}


def baseline_terms(structures: list[Atoms], baseline: ZBLCalculator) -> tuple[np.ndarray, list]:
    """ZBL energies (eV, shape (n,)) and forces (eV/Angstrom, (n_atoms, 3) each)."""
    energies, forces = [], []
    for atoms in structures:
        copy = bare(atoms)
        copy.calc = baseline
        energies.append(copy.get_potential_energy())
        forces.append(copy.get_forces())
    return np.array(energies), forces


def delta_dataframe(structures: list[Atoms], baseline: ZBLCalculator,
                    references: dict[str, float] | None = None,
                    ) -> tuple[pd.DataFrame, dict[str, float]]:
    """pacemaker DataFrame whose energy/forces are reference minus baseline minus per-element
    references (fitted here when not given), and the references used."""
    df = to_pacemaker_dataframe(structures)
    base_e, base_f = baseline_terms(structures, baseline)
    delta_e = df["energy"].to_numpy() - base_e
    if references is None:
        usable = [k for k, a in enumerate(structures) if a.info.get("energy_weight", 1.0) > 0]
        references = reference_energies([structures[k] for k in usable], delta_e[usable],
                                        sorted(baseline.elements))
    offsets = np.array([sum(references[s] for s in a.get_chemical_symbols()) for a in structures])
    df["energy_corrected"] = delta_e - offsets
    df["forces"] = [np.asarray(f) - b for f, b in zip(df["forces"], base_f, strict=True)]
    return df, references


def structure_weights(structures: list[Atoms]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energy weight per structure (shape ``(n,)``) and force weight per atom (one ``(n_atoms,)``
    array per structure): ``info['energy_weight']`` and ``arrays['force_weight']`` (periodic
    embedding), else 1."""
    energy = np.array([a.info.get("energy_weight", 1.0) for a in structures], float)
    forces = [np.asarray(a.arrays.get("force_weight", np.ones(len(a))), float) for a in structures]
    return energy, forces


def stressed(structures: list[Atoms]) -> list[int]:
    """Indices of the structures whose stress is fitted: periodic, labelled with one, energy weight > 0
    (an embedded cell's stress belongs to its corrupted boundary, like its energy)."""
    return [k for k, a in enumerate(structures)
            if a.calc is not None and a.calc.results.get("stress") is not None
            and a.pbc.all() and a.info.get("energy_weight", 1.0) > 0]


def loss_weights(structures: list[Atoms], kappa: float, stress_share: float = 0.0,
                 ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Balanced loss weights: per-atom virials (six rows per ``stressed`` structure; one weight
    per such structure, shape ``(n_stressed,)``) carry ``stress_share`` of the total weight; the rest goes
    ``1 - kappa`` to per-atom energies (one per structure, shape ``(n,)``) and ``kappa`` to the
    atoms' forces (one ``(n_atoms,)`` array per structure), pacemaker's meaning of ``kappa``. Each
    share is spread over its rows in proportion to ``structure_weights``; a share with no
    weighted rows stays 0 (without stresses, energies and forces share the whole). With
    ``stress_share`` 0 there are no virial rows at all."""
    energy, forces = structure_weights(structures)
    virial = energy[stressed(structures)] if stress_share > 0 else np.zeros(0)
    stress_share = stress_share if virial.sum() > 0 else 0.0
    force_total = sum(f.sum() for f in forces)
    rest = 1.0 - stress_share
    virial = stress_share * virial / virial.sum() if virial.sum() > 0 else virial * 0.0
    energy = rest * (1.0 - kappa) * energy / energy.sum() if energy.sum() > 0 else energy * 0.0
    forces = [rest * kappa * f / force_total if force_total > 0 else f * 0.0 for f in forces]
    return energy, forces, virial


def sample_weights(structures: list[Atoms], kappa: float, stress_share: float = 0.0) -> np.ndarray:
    """Ridge sample weights in the design matrix's row order (pyace's one per-atom-energy row per
    structure and three force rows per atom, then ``virial_rows``' six per stressed structure)
    from ``loss_weights``, scaled to a mean of 1 so that ``ridge_alpha`` keeps its meaning
    whatever the dataset's size."""
    energy, forces, virial = loss_weights(structures, kappa, stress_share)
    weights = np.concatenate([energy, np.repeat(np.concatenate(forces), 3), np.repeat(virial, 6)])
    return weights * len(weights) / weights.sum()


def _energy_row(calc, basis, atoms: Atoms, columns: int, shifts: list[int]) -> np.ndarray:
    """Sum over atoms of the B-projections, in the design matrix's columns: the energy row."""
    from pyace.atomicenvironment import aseatoms_to_atomicenvironment

    env = aseatoms_to_atomicenvironment(atoms, cutoff=basis.cutoffmax,
                                        elements_mapper_dict=basis.elements_to_index_map)
    calc.compute(env, compute_projections=True)
    row = np.zeros(columns)
    real = env.species_type[:env.n_atoms_real]  # then the periodic images
    for species, projection in zip(real, calc.projections, strict=True):
        row[shifts[species]:shifts[species] + len(projection)] += projection
    return row


def virial_rows(basis, structures: list[Atoms]) -> np.ndarray:
    """Design rows of the per-atom virial ``dE/d(strain) / N`` (= stress * V / N, ASE's sign and
    Voigt order), six per structure, shape ``(6 n, n_functions)``: central differences of the
    energy rows, which are linear in the coefficients like the energy."""
    from pyace import ACEBEvaluator, ACECalculator
    from pyace.linearacefit import compute_nfunc_func_ind_shift

    evaluator = ACEBEvaluator(basis)  # the calculator keeps a bare pointer to it
    calc = ACECalculator(evaluator)
    columns, shifts = compute_nfunc_func_ind_shift(basis)
    rows = np.zeros((6 * len(structures), columns))
    for k, atoms in enumerate(structures):
        for j in range(6):
            plus, minus = (_energy_row(calc, basis, voigt_strained(atoms, j, sign * STRAIN_STEP),
                                       columns, shifts) for sign in (1, -1))
            rows[6 * k + j] = (plus - minus) / (2 * STRAIN_STEP * len(atoms))
    return rows


def virial_targets(structures: list[Atoms], baseline: ZBLCalculator) -> np.ndarray:
    """Per-atom virials of the reference minus the baseline, eV/atom, shape ``(6 n,)`` (the
    per-element reference energies are constants and strain nothing)."""
    out = []
    for atoms in structures:
        copy = bare(atoms)
        copy.calc = baseline
        out.append((atoms.get_stress(voigt=True) - copy.get_stress(voigt=True)) * atoms.get_volume()
                   / len(atoms))
    return np.concatenate(out) if out else np.zeros(0)


def fit_inputs(train: list[Atoms], elements: list[str],
               settings: TrainerConfig) -> tuple[list[Atoms], int, int]:
    """What every fit starts from: the training structures within ``settings.max_force`` (and,
    with ``settings.prune_to_active_set``, only those holding the active set of the largest
    default basis the data carries), and how many were left out for their forces and by
    pruning."""
    fitted = within_force_limit(train, settings.max_force)
    excluded = len(train) - len(fitted)
    if excluded:
        log.info("%d training structures with forces above %.0f eV/A are not fitted", excluded,
                 settings.max_force)
    pruned = 0
    if settings.prune_to_active_set:
        kept = active_set_structures(fitted, basis_config(fixed_spec(fitted, elements, settings),
                                                          elements))
        pruned, fitted = len(fitted) - len(kept), kept
        log.info("fitting the %d structures that hold the active set (%d pruned)", len(kept), pruned)
    return fitted, excluded, pruned


def fixed_spec(train: list[Atoms], elements: list[str], settings: TrainerConfig,
               max_functions: int | None = None) -> BasisSpec:
    """One basis without a search: the config's settings, else the bond-length cutoff, SBessel
    and the largest size the data carries, γ included (at most ``max_functions``)."""
    cap = min(settings.max_functions_per_element, max_functions or settings.max_functions_per_element)
    return BasisSpec(
        cutoff=settings.nominal_cutoff(elements),
        radial_basis="SBessel" if settings.radial_basis == "auto" else settings.radial_basis,
        functions_per_element=min(size_limit(train, elements, cap)[0], gamma_limit(train, elements)[0])
        if settings.functions_per_element == "auto" else settings.functions_per_element)


def active_set_structures(structures: list[Atoms], bconf) -> list[Atoms]:
    """The structures whose atoms enter the active set (MaxVol over every atom's B-projections,
    what pacemaker's ``pace_activeset`` computes), in their order."""
    from pyace.activelearning import compute_active_set, compute_B_projections

    with engine_call():
        projections, owners = compute_B_projections(bconf, [bare(a) for a in structures],
                                                    return_structure_ind_dict=True)
        _, chosen = compute_active_set(projections, owners, **MAXVOL)
    keep = {int(i) for rows in chosen.values() for i in rows}
    return [a for k, a in enumerate(structures) if k in keep]


def held_out_scores(potential: Potential, test: list[Atoms], classes: list[str],
                    max_force: float) -> dict:
    """FitResult's held-out fields for ``potential`` (its full model, ACE + ZBL + references)
    on ``test``: errors over ``classes`` (all classes when none of them is held out), per
    class, beyond ``max_force`` apart, and the 90th percentile of the largest γ."""
    metrics = held_out_metrics(test, potential.calculator(with_gamma=True), classes, max_force)
    if metrics is None:
        return {}
    main = metrics.targeted or metrics.overall
    return {"test_energy_rmse": main.energy_rmse, "test_force_rmse": main.force_rmse,
            "test_by_class": metrics.by_generator,
            "test_beyond_force_limit": metrics.beyond_force_limit,
            "held_out_gamma": float(np.percentile(metrics.max_gamma, 90))}


def write_fit(folder: Path, result: FitResult) -> None:
    """Write ``result`` as ``fit.json`` into ``folder``: a potential folder with it holds a
    finished fit (``load_fit``)."""
    (folder / FIT_FILE).write_text(result.model_dump_json(indent=2))


def fit_linear_ace(train: list[Atoms], test: list[Atoms], elements: list[str],
                   settings: TrainerConfig, out_dir: Path,
                   targets: TargetsConfig | None = None) -> tuple[Potential, FitResult]:
    """Fit ``train`` with the basis ``basis.choose_basis`` picks for ``targets`` (default
    targets when None), score on ``test`` (``held_out_scores`` over ``targets.classes``), write
    .yaml/.yace/.asi/potential.json to ``out_dir``.

    The folder appears atomically (written beside it, then swapped in by
    ``workdir.staged_folder``), so a killed fit leaves nothing half-written; ``fit.json`` in it
    holds the FitResult.
    """
    from pyace import ACEBBasisSet

    start = time.perf_counter()
    train, excluded, pruned = fit_inputs(train, elements, settings)
    baseline = ZBLCalculator(elements, settings.zbl_inner, settings.zbl_outer)
    train_df, references = delta_dataframe(train, baseline)
    targets = targets or TargetsConfig()
    choice, rows, columns = choose_basis(train_df, train, elements, settings,
                                         sample_weights(train, settings.loss_kappa), targets)
    basis = ACEBBasisSet(basis_config(choice.chosen, elements))
    with_stress = [train[k] for k in stressed(train)] if settings.loss_stress > 0 else []
    with engine_call():
        design = np.vstack([rows.matrix[:, columns], virial_rows(basis, with_stress)])
    target = np.concatenate([rows.target, virial_targets(with_stress, baseline)])
    weights = np.sqrt(sample_weights(train, settings.loss_kappa, settings.loss_stress))
    weighted = design * weights[:, None]
    with engine_call():
        basis.basis_coeffs = solve(weighted.T @ weighted, weighted.T @ (target * weights),
                                   settings.ridge_alpha)
    residual = rows.matrix[:, columns] @ basis.basis_coeffs - rows.target
    with staged_folder(out_dir) as staging:
        potential = Potential(folder=staging, elements=elements, cutoff=choice.chosen.cutoff,
                              zbl_inner=settings.zbl_inner, zbl_outer=settings.zbl_outer,
                              reference_energies=references,
                              functions_per_element=choice.chosen.functions_per_element,
                              radial_basis=choice.chosen.radial_basis,
                              gamma_functions_per_element=choice.gamma_functions)
        write_potential_files(basis, potential, train, gamma_basis(choice, elements))
        write_fit(staging, FitResult(
            n_train=len(train), n_test=len(test), n_excluded=excluded, n_pruned=pruned,
            functions_per_element=choice.chosen.functions_per_element, loss_kappa=settings.loss_kappa,
            loss_stress=settings.loss_stress, n_stressed=len(with_stress),
            seconds=time.perf_counter() - start, cutoff=choice.chosen.cutoff, basis=choice,
            train_energy_rmse=1000 * float(np.sqrt(np.mean(residual[~rows.is_force] ** 2))),
            train_force_rmse=float(np.sqrt(np.mean(residual[rows.is_force] ** 2))),
            **held_out_scores(potential, test, targets.classes, settings.max_force)))
    return load_fit(out_dir)


def load_fit(out_dir: Path) -> tuple[Potential, FitResult] | None:
    """A finished fit in ``out_dir``, or ``None`` if there is none."""
    if not (out_dir / FIT_FILE).is_file():
        return None
    return Potential.load(out_dir), FitResult.model_validate_json((out_dir / FIT_FILE).read_text())


def write_potential_files(basis, potential: Potential, train: list[Atoms], gamma_bconf=None) -> None:
    """Write the B-basis .yaml, the C-tilde .yace and the linear active set .asi, of
    ``gamma_bconf`` (written as ``gamma.yaml``) when given, else of the basis itself."""
    from pyace.activelearning import (
        compute_A_active_inverse,
        compute_active_set,
        compute_B_projections,
        save_active_inverse_set,
    )

    bconf = basis.to_BBasisConfiguration()
    bconf.metadata["pyacemaker_reference_energies"] = str(potential.reference_energies)
    bconf.save(str(potential.yaml))
    basis.to_ACECTildeBasisSet().save_yaml(str(potential.yace))
    if gamma_bconf is not None:
        gamma_bconf.save(str(potential.gamma_yaml))
    with engine_call():
        projections = compute_B_projections(gamma_bconf or bconf, [bare(a) for a in train])
        active_set = compute_active_set(projections, **MAXVOL)
        inverse = compute_A_active_inverse(active_set)
    save_active_inverse_set(str(potential.asi), inverse, elements_name=basis.elements_name)
    potential.save()
