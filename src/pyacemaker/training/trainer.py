"""Which ACE fit a run gets (linear or nonlinear), and one call that does it.

``trainer.kind: auto`` follows ``benchmarks/accuracy.py``: linear ACE fits in seconds and is
enough for simple systems, while a nonlinear pacemaker fit is more accurate but takes minutes to
hours. So auto fits linear in every iteration of active learning, and in the run's last
iteration (its budget's) also nonlinear when the linear fit misses the targets, TensorFlow is
installed and the data can carry the larger model; the one with the lower held-out error is
kept.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from pyacemaker.config import TargetsConfig, TrainerConfig
from pyacemaker.progress import progress_bar
from pyacemaker.records import FitResult
from pyacemaker.training.linear import fit_linear_ace, load_fit
from pyacemaker.training.nonlinear import fit_nonlinear_ace, tensorflow_available
from pyacemaker.training.potential import Potential
from pyacemaker.workdir import publish_copy

log = logging.getLogger(__name__)

NONLINEAR_MIN_ATOMS = 1000  # training atoms below which auto stays linear (overfitting risk)


def nonlinear_refused(train: list[Atoms]) -> str | None:
    """Why auto cannot go nonlinear for ``train``, or None when it can."""
    atoms = sum(len(a) for a in train)
    if atoms < NONLINEAR_MIN_ATOMS:
        return f"{atoms} training atoms (a nonlinear fit needs {NONLINEAR_MIN_ATOMS})"
    if not tensorflow_available():
        return "TensorFlow is not installed (`make nonlinear` adds it)"
    return None


def fit(train: list[Atoms], test: list[Atoms], elements: list[str], settings: TrainerConfig,
        out_dir: Path, targets: TargetsConfig | None = None, previous: Potential | None = None,
        show_progress: bool = True, final: bool = True) -> tuple[Potential, FitResult]:
    """Fit ``train`` (scored on ``test``) into ``out_dir`` with ``settings.kind``; see the module
    docstring for auto, which considers a nonlinear fit only when ``final`` (the run's last
    fit). A nonlinear fit warm-starts from ``previous`` when that is nonlinear. The cutoff and
    radial basis left to auto are chosen in the final fit only (the choice computes the design
    rows of four candidates); the fits before keep ``previous``'s, or start from the nominal
    cutoff and SBessel (``interim_basis``). The size is chosen in every fit, at no extra cost."""
    classes = targets.classes if targets is not None else []
    if not final:
        settings = interim_basis(settings, elements, previous)
    if settings.kind == "nonlinear":
        return _nonlinear(train, test, elements, settings, out_dir, previous, show_progress, classes)
    if settings.kind == "linear":
        return fit_linear_ace(train, test, elements, settings, out_dir, targets)
    linear_dir = out_dir.with_name(out_dir.name + ".linear")
    linear = load_fit(linear_dir) or fit_linear_ace(train, test, elements, settings, linear_dir, targets)
    refused = ("targets met" if _meets(linear[1], targets) else
               "not the run's last fit" if not final else nonlinear_refused(train))
    if refused:
        log.info("trainer: linear (%s)", refused)
        publish_copy(linear_dir, out_dir)
        shutil.rmtree(linear_dir)  # this function's own fit folder (<out_dir>.linear), published
        return load_fit(out_dir)
    log.info("trainer: linear misses the targets (%.2f meV/atom, %.4f eV/A held out); fitting "
             "nonlinear", linear[1].test_energy_rmse or linear[1].train_energy_rmse,
             linear[1].test_force_rmse or linear[1].train_force_rmse)
    nonlinear_dir = out_dir.with_name(out_dir.name + ".nonlinear")
    nonlinear = _nonlinear(train, test, elements, settings, nonlinear_dir, previous, show_progress,
                           classes)
    better = nonlinear if _error(nonlinear[1]) < _error(linear[1]) else linear
    log.info("trainer: keeping the %s fit (held-out %.2f vs %.2f meV/atom)", better[1].kind,
             _error(better[1]), _error((linear if better is nonlinear else nonlinear)[1]))
    publish_copy(better[0].folder, out_dir)
    for folder in (linear_dir, nonlinear_dir):  # this function's own fit folders, one published
        shutil.rmtree(folder)
    return load_fit(out_dir)


def interim_basis(settings: TrainerConfig, elements: list[str],
                  previous: Potential | None) -> TrainerConfig:
    """``settings`` with the cutoff and radial basis of ``previous`` (else the nominal cutoff
    and SBessel) where they are auto: what a fit before the run's final one uses."""
    keep = ({"cutoff": previous.cutoff, "radial_basis": previous.radial_basis} if previous else
            {"cutoff": settings.nominal_cutoff(elements), "radial_basis": "SBessel"})
    return settings.model_copy(update={k: v for k, v in keep.items() if getattr(settings, k) == "auto"})


@dataclass
class FitOutcome:
    """A fit sent back as data: its files (relative path -> content) and its scores."""

    files: dict[str, bytes]
    result: FitResult


def fit_task(train: list[Atoms], test: list[Atoms], elements: list[str], settings: TrainerConfig,
             targets: TargetsConfig | None, previous_files: dict[str, bytes] | None,
             final: bool, show_progress: bool = False) -> FitOutcome:
    """``fit`` as a task of data: it fits in a temporary folder of this worker and returns the
    potential's files; ``previous_files`` are the previous potential's (``Potential.files``)."""
    with tempfile.TemporaryDirectory(prefix="pyacemaker-fit-") as tmp:
        previous = None if previous_files is None else Potential.from_files(
            previous_files, Path(tmp) / "previous")
        out = Path(tmp) / "potential"
        _, result = fit(train, test, elements, settings, out, targets, previous, show_progress,
                        final)
        files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
                 if p.is_file()}
    return FitOutcome(files, result)


def _nonlinear(train, test, elements, settings, out_dir, previous, show_progress, classes):
    initial = previous if previous is not None and previous.kind == "nonlinear" else None
    with progress_bar(show_progress, transient=True) as progress:
        task = progress.add_task("fitting (pacemaker)", total=settings.nonlinear_iterations)
        return fit_nonlinear_ace(train, test, elements, settings, out_dir, initial,
                                 lambda n: progress.update(task, completed=n), classes)


def _meets(result: FitResult, targets: TargetsConfig | None) -> bool:
    """Every class with enough held-out structures meets its targets (``TargetsConfig.grade``)."""
    return targets is not None and targets.grade(result.test_by_class).passed is True


def _error(result: FitResult) -> float:
    """Held-out energy RMSE (meV/atom), the training one when nothing is held out."""
    return result.test_energy_rmse if result.test_energy_rmse is not None else result.train_energy_rmse


