"""Which ACE fit a run gets (linear or nonlinear), and one call that does it."""

from __future__ import annotations

import logging
from pathlib import Path

from ase import Atoms

from pyacemaker.config import TrainerConfig
from pyacemaker.progress import progress_bar
from pyacemaker.training.linear import FitResult, fit_linear_ace
from pyacemaker.training.nonlinear import fit_nonlinear_ace, tensorflow_available
from pyacemaker.training.potential import Potential

log = logging.getLogger(__name__)

NONLINEAR_MIN_ATOMS = 10_000  # below it, benchmarks/trainers.py: linear is as accurate and faster


def choose_kind(settings: TrainerConfig, train: list[Atoms]) -> tuple[str, str]:
    """(kind, reason): the configured kind, or for ``auto`` nonlinear once the training set
    holds ``NONLINEAR_MIN_ATOMS`` atoms and TensorFlow is installed."""
    if settings.kind != "auto":
        return settings.kind, "trainer.kind"
    atoms = sum(len(a) for a in train)
    if atoms < NONLINEAR_MIN_ATOMS:
        return "linear", f"{atoms} training atoms (< {NONLINEAR_MIN_ATOMS} for a nonlinear fit)"
    if not tensorflow_available():
        return "linear", "TensorFlow is not installed (`make nonlinear` adds it)"
    return "nonlinear", f"{atoms} training atoms"


def fit(train: list[Atoms], test: list[Atoms], elements: list[str], settings: TrainerConfig,
        out_dir: Path, previous: Potential | None = None,
        show_progress: bool = True) -> tuple[Potential, FitResult]:
    """Fit the chosen kind; a nonlinear fit shows its BFGS iterations and warm-starts from
    ``previous`` when that is nonlinear too."""
    kind, reason = choose_kind(settings, train)
    log.info("trainer: %s (%s)", kind, reason)
    if kind == "linear":
        return fit_linear_ace(train, test, elements, settings, out_dir)
    initial = previous if previous is not None and previous.kind == "nonlinear" else None
    with progress_bar(show_progress, transient=True) as progress:
        task = progress.add_task("fitting (pacemaker)", total=settings.nonlinear_iterations)
        return fit_nonlinear_ace(train, test, elements, settings, out_dir, initial,
                                 lambda n: progress.update(task, completed=n))
