"""eOn as the saddle-search engine: its client (``eonclient``) runs the dimer method with our
potential, γ-guarded like ``saddles.dimer_search``, which it can replace.

eOn reaches the potential through its external-potential interface (``potential = ext_pot``):
for every force call it writes the positions to a file and runs a program. That program is
``eon_bridge.py``, a standard-library client that forwards the file over a Unix socket to a
server thread in this process, where the ``GuardedCalculator`` answers. Where γ passes the halt
threshold the server answers ``HALT``, the client exits non-zero, eOn stops the search, and the
``Extrapolating`` with that configuration is raised here, as for ASE's dimer.

``eonclient`` is the one on PATH, the one ``make eon`` builds into the cache
(``scripts/build-eon``: eOn 3.6.0 from PyPI's eon-akmc sdist), or ``rare_events.eon_command``.
"""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.constraints import FixAtoms

from pyacemaker import eon_bridge
from pyacemaker.cache import cache_dir
from pyacemaker.config import RareEventsConfig
from pyacemaker.errors import CalculationFailed, ConfigError, EngineSetupError
from pyacemaker.saddles import MAX_STEPS, SADDLE_FMAX, Extrapolating, Saddle
from pyacemaker.structures import bare

EON_TIMEOUT_S = 900.0  # one saddle search
SUCCESS, POTENTIAL_FAILED = 0, 11  # eOn's termination reasons in results.dat
CONFIG = """[Main]
job = saddle_search
random_seed = {seed}

[Potential]
potential = ext_pot
ext_pot_path = {bridge}

[Saddle Search]
method = min_mode
min_mode_method = dimer
max_energy = 10.0
converged_force = {fmax}
max_iterations = {steps}

[Dimer]
opt_method = cg
improved = true
rotations_max = 20
converged_angle = 1.0

[Optimizer]
opt_method = cg
converged_force = {fmax}
max_move = 0.1
"""


def cached_eonclient() -> Path:
    """Where ``make eon`` puts ``eonclient``."""
    return cache_dir() / "eon" / "venv" / "bin" / "eonclient"


def find_eonclient(command: str | None = None) -> list[str]:
    """The command that runs eOn's client: ``command`` (split like a shell line), else
    ``eonclient`` on PATH, else the cached build.

    Raises
    ------
    EngineSetupError
        None of them exists, naming the fix.
    """
    if command:
        return shlex.split(command)
    found = shutil.which("eonclient")
    if found:
        return [found]
    if cached_eonclient().is_file():
        return [str(cached_eonclient())]
    raise EngineSetupError(
        "eOn's client (eonclient) is not on PATH nor built here: run `make eon` (builds eOn 3.6.0 "
        "from PyPI's eon-akmc, 25-40 min once), or set exploration.rare_events.eon_command, or "
        "use rare_events.engine: ase")


def check_rare_events(settings: RareEventsConfig) -> None:
    """Start-up check: with ``engine: eon``, eOn's client exists here.

    Raises
    ------
    ConfigError
        Naming the field and the fix.
    """
    if settings.engine != "eon":
        return
    try:
        command = find_eonclient(settings.eon_command)
    except EngineSetupError as err:
        raise ConfigError(f"field 'exploration.rare_events.engine': {err}") from None
    if shutil.which(command[0]) is None:
        raise ConfigError(f"field 'exploration.rare_events.eon_command': '{command[0]}' is not an "
                          "executable here; give the path of eonclient")


def eon_dimer_search(minimum: Atoms, calc: Calculator, rng: np.random.Generator, center: int,
                     command: list[str], radius: float = 3.0, magnitude: float = 0.15,
                     timeout_s: float = EON_TIMEOUT_S) -> Saddle | None:
    """A saddle found by eOn's dimer method from ``minimum``, displaced like
    ``saddles.dimer_search`` (Gaussian, ``magnitude`` Angstrom, atoms within ``radius`` of atom
    ``center``). The atom farthest from ``center`` is held fixed (the dimer would otherwise
    lock onto a rigid translation). ``None`` when eOn ends without a saddle.

    Raises
    ------
    Extrapolating
        A force call passed the halt threshold of ``calc`` (a ``GuardedCalculator``).
    CalculationFailed
        eOn did not run (its output is quoted), or timed out.
    """
    start = bare(minimum)
    distances = start.get_distances(center, range(len(start)), mic=True)
    start.set_constraint(FixAtoms([int(np.argmax(distances))]))
    near = (distances <= radius) & (distances < distances.max())
    step = np.zeros((len(start), 3))
    step[near] = rng.normal(0.0, magnitude, (int(near.sum()), 3))
    with tempfile.TemporaryDirectory(prefix="pyacemaker-eon-") as tmp:
        folder = Path(tmp)
        displaced = start.copy()
        displaced.positions += step
        ase.io.write(folder / "pos.con", start, format="eon")
        ase.io.write(folder / "displacement.con", displaced, format="eon")
        np.savetxt(folder / "direction.dat", step / np.linalg.norm(step))
        with BridgeServer(folder / "socket", calc) as server:
            bridge = " ".join(shlex.quote(word) for word in (
                sys.executable, "-S", eon_bridge.__file__, str(server.path)))
            (folder / "config.ini").write_text(CONFIG.format(
                seed=int(rng.integers(2**31)), bridge=bridge, fmax=SADDLE_FMAX,
                steps=MAX_STEPS["dimer"]))
            done = _run(command, folder, timeout_s)
        if server.halt is not None:
            raise server.halt
        if server.error is not None:
            raise CalculationFailed(f"eOn's force call failed here: {server.error}")
        return _saddle(folder, done, calc)


def _run(command: list[str], folder: Path, timeout_s: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=folder, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise CalculationFailed(f"eOn's saddle search took longer than {timeout_s:g} s") from None
    except OSError as err:
        raise CalculationFailed(f"cannot run eOn ({' '.join(command)}): {err}") from None


def _saddle(folder: Path, done: subprocess.CompletedProcess, calc: Calculator) -> Saddle | None:
    """The saddle eOn wrote, re-evaluated with ``calc``; ``None`` when it ended without one."""
    results = read_results(folder / "results.dat")
    if "termination_reason" not in results:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise CalculationFailed(f"eOn ended (exit status {done.returncode}) without results: "
                                f"{tail}")
    if int(results["termination_reason"]) != SUCCESS or results.get("final_eigenvalue", 0) >= 0:
        return None
    found = ase.io.read(folder / "saddle.con", format="eon")
    found.pbc = True  # ASE's .con reader does not set it
    saddle = bare(found)
    mode = np.loadtxt(folder / "mode.dat").reshape(-1, 3)
    saddle.calc = calc
    return Saddle(saddle, float(saddle.get_potential_energy()), mode / np.linalg.norm(mode))


def read_results(path: Path) -> dict[str, float]:
    """eOn's ``results.dat``: ``value name`` lines as ``{name: value}`` (numbers only)."""
    out: dict[str, float] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        words = line.split()
        if len(words) == 2:
            try:
                out[words[1]] = float(words[0])
            except ValueError:
                continue
    return out


class BridgeServer:
    """A Unix socket server on a thread that answers ``eon_bridge`` clients with ``calc``'s
    energy and forces; it keeps the first ``Extrapolating`` (answered ``HALT``) or other
    error."""

    def __init__(self, path: Path, calc: Calculator) -> None:
        self.path, self.calc = path, calc
        self.halt: Extrapolating | None = None
        self.error: str | None = None
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> BridgeServer:
        self._socket.bind(str(self.path))
        self._socket.listen()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(None)
                request = eon_bridge.receive(connection)
                eon_bridge.send(connection, self.answer(request))

    def answer(self, request: bytes) -> bytes:
        """Energy (eV) and forces (eV/Angstrom) for one ``from_eon_to_extpot`` text, or
        ``HALT``."""
        try:
            rows = [line.split() for line in request.decode().splitlines() if line.strip()]
            cell, table = np.array(rows[:3], dtype=float), np.array(rows[3:], dtype=float)
            atoms = Atoms(numbers=table[:, 0].astype(int), positions=table[:, 1:4], cell=cell,
                          pbc=True)
            atoms.calc = self.calc
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        except Extrapolating as halt:
            self.halt = self.halt or halt
            return eon_bridge.HALT
        except Exception as err:  # reported by eon_dimer_search, never lost in the thread
            self.error = self.error or f"{type(err).__name__}: {err}"
            return eon_bridge.HALT
        lines = [f"{energy:.12f}"] + [" ".join(f"{x:.12f}" for x in row) for row in forces]
        return ("\n".join(lines) + "\n").encode()
