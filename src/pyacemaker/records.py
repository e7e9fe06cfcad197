"""Small result types shared between layers (labels, fits, policy decisions); this module
imports nothing of pyacemaker's."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class LabelResult(BaseModel):
    """One reference calculation. A failure is a result too (``ok=False`` with a reason)."""

    ok: bool
    energy: float | None = Field(None, description="total energy, eV")
    forces: list[list[float]] | None = Field(None, description="eV/Angstrom, shape (n_atoms, 3)")
    stress: list[float] | None = Field(
        None, description="eV/Angstrom^3, Voigt order xx yy zz yz xz xy; None if not computed"
    )
    reason: str = Field("", description="why the calculation failed")
    seconds: float = Field(0.0, description="wall time, s")
    settings: dict[str, Any] = Field(default_factory=dict, description="oracle settings used")
    logs: dict[str, bytes] = Field(
        default_factory=dict, exclude=True, description="files kept for inspection, "
        "gzip-compressed, by relative path (e.g. HASH/attempt_0/espresso.pwo.gz)")


class Errors(BaseModel):
    """RMSE and MAE over a group of structures; stress only where the labels have it."""

    n_structures: int
    energy_rmse: float = Field(description="meV/atom")
    energy_mae: float = Field(description="meV/atom")
    force_rmse: float = Field(description="eV/Angstrom, per component")
    force_mae: float = Field(description="eV/Angstrom, per component")
    stress_rmse: float | None = Field(None, description="GPa, per Voigt component")
    stress_mae: float | None = Field(None, description="GPa, per Voigt component")


class BasisSpec(BaseModel):
    """One linear ACE basis: its cutoff, radial functions and size."""

    model_config = {"frozen": True}

    cutoff: float = Field(description="Angstrom")
    radial_basis: str = Field(description="pyace radial basis: SBessel, ChebExpCos or ChebPow")
    functions_per_element: int


class BasisScore(BaseModel):
    """A candidate basis and its cross-validated errors on the training set."""

    spec: BasisSpec
    score: float = Field(description="E / E_best + F / F_best (each error relative to the lowest "
                         "among the candidates), relative to the best candidate's (1 = the best)")
    energy_rmse: float = Field(description="meV/atom, target classes on the held-out folds")
    force_rmse: float = Field(description="eV/Angstrom, per component, as energy_rmse")


class BasisChoice(BaseModel):
    """Which basis a fit used and why: the candidates' cross-validated scores and the limit on
    the size that the data (extrapolation grade) sets."""

    chosen: BasisSpec
    scores: list[BasisScore] = Field(default_factory=list, description="empty when every "
                                     "setting was fixed in the config (nothing to choose)")
    max_functions: int = Field(description="largest size tried, functions per element")
    limit: str = Field(description="what set max_functions")
    reason: str = Field(description="why the chosen basis, in one sentence")
    gamma_functions: int | None = Field(
        None, description="functions per element of the basis whose active set gives the "
        "extrapolation grade, when that is not the chosen size")
    gamma_limit: str = Field("", description="what bounds the extrapolation grade's basis")
    seconds: float = Field(0.0, description="wall time of the design rows and the choice, s")
class ClassGrade(BaseModel):
    """One structure class's held-out errors against its own targets."""

    n_structures: int = Field(description="held-out structures of the class")
    energy_rmse: float = Field(description="meV/atom")
    force_rmse: float = Field(description="eV/Angstrom, per component")
    energy_target: float = Field(description="meV/atom, the class's own target")
    force_target: float = Field(description="eV/Angstrom, the class's own target")
    decides: bool = Field(description="enough held-out structures to enter the verdict")

    @property
    def energy_met(self) -> bool:
        return self.energy_rmse <= self.energy_target

    @property
    def force_met(self) -> bool:
        return self.force_rmse <= self.force_target

    def ratio(self, quantity: str) -> float:
        """RMSE over target of ``quantity`` (energy or force): above 1 misses."""
        return getattr(self, f"{quantity}_rmse") / getattr(self, f"{quantity}_target")


class Grade(BaseModel):
    """Held-out errors per class against per-class targets. Only the classes with at least
    ``min_held_out`` held-out structures decide; the others are shown, marked too few."""

    min_held_out: int = Field(description="held-out structures a class needs to decide")
    classes: dict[str, ClassGrade] = Field(default_factory=dict)

    @property
    def deciding(self) -> list[str]:
        return [name for name, c in self.classes.items() if c.decides]

    @property
    def too_few(self) -> dict[str, int]:
        """Classes that cannot decide, with their held-out counts."""
        return {name: c.n_structures for name, c in self.classes.items() if not c.decides}

    def met(self, quantity: str) -> bool | None:
        """Every deciding class within its ``quantity`` (energy or force) target; None when no
        class decides."""
        deciding = [c for c in self.classes.values() if c.decides]
        return all(getattr(c, f"{quantity}_met") for c in deciding) if deciding else None

    @property
    def passed(self) -> bool | None:
        """Both targets met by every deciding class; None when no class decides."""
        energy, force = self.met("energy"), self.met("force")
        return None if energy is None else energy and force

    def worst(self, quantity: str) -> str | None:
        """The deciding class furthest from (or closest to) its ``quantity`` target."""
        deciding = self.deciding
        return max(deciding, key=lambda n: self.classes[n].ratio(quantity)) if deciding else None

    def too_few_text(self) -> str:
        """e.g. ``too few to decide (n < 5): antisite 2, random 1``; "" when every class decides."""
        few = self.too_few
        return (f"too few to decide (n < {self.min_held_out}): "
                + ", ".join(f"{name} {n}" for name, n in few.items())) if few else ""


class FitResult(BaseModel):
    """Outcome of one fit: errors in meV/atom and eV/Angstrom, on train and held-out data."""

    n_train: int
    n_test: int
    n_excluded: int = Field(0, description="training structures left out for forces above max_force")
    n_pruned: int = Field(0, description="training structures left out by prune_to_active_set")
    functions_per_element: int
    kind: str = Field("linear", description="linear (pyace) or nonlinear (pacemaker)")
    seconds: float = Field(description="wall time of the fit, s")
    train_energy_rmse: float = Field(description="meV/atom")
    train_force_rmse: float = Field(description="eV/Angstrom")
    loss_kappa: float | None = Field(None, description="share of the loss given to forces")
    loss_stress: float | None = Field(None, description="share of the loss given to stresses")
    n_stressed: int = Field(0, description="training structures whose stresses were fitted")
    test_energy_rmse: float | None = Field(None, description="meV/atom, over the target classes "
                                           "(all held-out classes when none is given)")
    test_force_rmse: float | None = Field(None, description="eV/Angstrom, as test_energy_rmse")
    test_by_class: dict[str, Errors] = Field(default_factory=dict, description="held-out errors "
                                             "per structure class, within the force limit")
    test_beyond_force_limit: Errors | None = Field(None, description="held-out structures above "
                                                   "trainer.max_force, scored apart")
    held_out_gamma: float | None = Field(None, description="90th percentile of the held-out "
                                         "structures' largest extrapolation grade")
    cutoff: float | None = Field(None, description="ACE cutoff of the fit, Angstrom")
    basis: BasisChoice | None = Field(None, description="how the linear basis was chosen")


HOTTEST = 1.3  # most a policy's MD may reach, in melting points (a hot liquid)


class PolicyDecision(BaseModel):
    """What one iteration explores; ``reasons`` says why."""

    iteration: int
    material: str = Field(description="metal or covalent/ionic")
    melting_k: float = Field(description="estimated melting point, K")
    temperatures_k: list[float]
    pressures_gpa: list[float] = Field(description="NPT pressures; empty means NVT")
    max_strain: float
    ratios: dict[str, float] = Field(description="share of perturbed structures per strategy")
    gamma_collect: float = Field(5.0, description="extrapolation grade above which frames are candidates")
    gamma_halt: float = Field(25.0, description="extrapolation grade at which MD stops")
    fixed_temperatures: bool = Field(False, description="temperatures set in the config")
    kmc: bool = Field(False, description="saddle searches and kinetic Monte Carlo from defects "
                      "run beside MD")
    reasons: list[str]

    @property
    def at_hottest(self) -> bool:
        """MD reaches the hottest temperature this policy will try (the config's own
        temperatures count as the hottest)."""
        return self.fixed_temperatures or max(self.temperatures_k) >= round(HOTTEST * self.melting_k)


class ProcessRecord(BaseModel):
    """One process (a transition from a minimum over a saddle to another minimum) that a kinetic
    Monte Carlo run found with the potential."""

    run: str = Field(description="the kMC run that found it")
    step: int = Field(description="kMC step (0: from the relaxed start)")
    barrier_ev: float = Field(description="forward barrier along the climbing-image NEB, eV")
    reverse_barrier_ev: float = Field(description="barrier from the final minimum back, eV")
    prefactor_hz: float = Field(description="harmonic transition-state prefactor, Hz")
    prefactor_from: str = Field(description="vineyard (normal modes) or config")
    temperature_k: float = Field(description="kMC temperature, K")
    rate_hz: float = Field(description="prefactor times exp(-barrier / kT), Hz")
    saddle_gamma: float = Field(description="largest extrapolation grade at the saddle")
    moved_atoms: int = Field(description="atoms displaced by more than 0.5 Angstrom")
    chosen: bool = Field(False, description="the kMC step took this process")
