"""Oracles backed by ASE calculators: EMT, tblite (GFN1/GFN2-xTB), CHGNet, any class by import
path; each engine's calculator builder and start-up checks (see ``oracle.registry``).

A calculation that raises, returns non-finite numbers or runs past ``oracle.timeout_s`` is a
failed label with its reason; the timeout is a SIGALRM in the worker's main thread, so it stops
Python code and waits (sleeps, I/O) but not a C routine that never returns to Python (a crashed
or stuck worker process is the dispatcher's: see ``dispatch``)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError

from pyacemaker.config import CHGNET_MODELS, OracleConfig
from pyacemaker.errors import ConfigError
from pyacemaker.oracle.registry import find_engine, recorded_settings
from pyacemaker.records import LabelResult

EMT_ELEMENTS = frozenset({"H", "C", "N", "O", "Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au"})
DEFAULT_TBLITE_METHOD = "GFN1-xTB"


def resolve_emt(oracle: OracleConfig, elements: list[str]) -> OracleConfig:
    """``oracle`` unchanged; raises ConfigError when EMT has no parameters for an element."""
    unsupported = sorted(set(elements) - EMT_ELEMENTS)
    if unsupported:
        raise ConfigError(
            f"field 'oracle.engine': emt cannot label {', '.join(unsupported)} "
            f"(EMT knows {', '.join(sorted(EMT_ELEMENTS))}); use 'engine: tblite'"
        )
    return oracle


def resolve_tblite(oracle: OracleConfig, elements: list[str]) -> OracleConfig:
    """``oracle`` with tblite's default method unless one is set."""
    return oracle.model_copy(update={"method": oracle.method or DEFAULT_TBLITE_METHOD})


def resolve_chgnet(oracle: OracleConfig, elements: list[str]) -> OracleConfig:
    """``oracle`` with chgnet's default model unless one is set; raises ConfigError when chgnet
    is not installed."""
    if importlib.util.find_spec("chgnet") is None:
        raise ConfigError("field 'oracle.engine': chgnet is not installed in this environment; "
                          "`make quickstart` installs it (torch CPU and chgnet)")
    return oracle.model_copy(update={"model": oracle.model or CHGNET_MODELS[0]})


def emt_factory(settings: OracleConfig) -> Callable[[], Calculator]:
    """Builds ASE's EMT calculators with ``settings.parameters``."""
    from ase.calculators.emt import EMT

    params = dict(settings.parameters)
    return lambda: EMT(**params)


def tblite_factory(settings: OracleConfig) -> Callable[[], Calculator]:
    """Builds quiet tblite calculators with ``settings.method``; raises ConfigError when tblite
    is not installed."""
    try:
        from tblite.ase import TBLite
    except ImportError as err:
        raise ConfigError(
            "field 'oracle.engine': tblite is not installed; `pip install tblite`"
        ) from err
    params = {"verbosity": 0, **settings.parameters}
    return lambda: TBLite(method=settings.method or DEFAULT_TBLITE_METHOD, **params)


def chgnet_factory(settings: OracleConfig) -> Callable[[], Calculator]:
    """Builds CHGNet calculators with ``settings.model`` (see ``chgnet_calculator``)."""
    params = dict(settings.parameters)
    return lambda: chgnet_calculator(settings.model or CHGNET_MODELS[0], params)


def import_path_factory(settings: OracleConfig) -> Callable[[], Calculator]:
    """Builds the ASE calculator class ``ase:<module>:<Class>`` names.

    Raises
    ------
    ConfigError
        When the module or class cannot be imported.
    """
    _, module_name, class_name = settings.engine.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"field 'oracle.engine': cannot import {class_name} from {module_name} ({err}); "
            "check the spelling and that the module is installed in this environment"
        ) from err
    params = dict(settings.parameters)
    return lambda: cls(**params)


def chgnet_calculator(model: str, params: dict[str, Any]) -> Calculator:
    """CHGNet's ASE calculator with the shipped pretrained ``model`` (nothing is downloaded), on
    the CPU with one torch thread (the worker processes are the parallelism).

    Raises
    ------
    ConfigError
        When chgnet (and torch) are not installed.
    """
    try:
        import torch
        from chgnet.model import CHGNet, CHGNetCalculator
    except ImportError as err:
        raise ConfigError("field 'oracle.engine': chgnet is not installed; `make quickstart` installs "
                          "it (or `pip install torch==2.13.0 chgnet==0.4.2`)") from err
    torch.set_num_threads(1)
    # chgnet's own harmless warning on every call (a tensor built from a tensor), and its prints
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    with contextlib.redirect_stdout(io.StringIO()):
        loaded = CHGNet.load(model_name=model, use_device="cpu", verbose=False)
        return CHGNetCalculator(loaded, use_device="cpu", **params)


def engine_version(settings: OracleConfig) -> str | None:
    """The version of the package behind a calculator engine (stored with every label)."""
    package = find_engine(settings.engine).package
    if package is None:
        return None
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return None


def calculator_oracle(settings: OracleConfig, scratch: Path) -> CalculatorOracle:
    """The registry's factory for calculator engines (they write no files: ``scratch`` is
    unused)."""
    return CalculatorOracle(settings)


class CalculatorOracle:
    """Labels structures with an ASE calculator; a calculator exception becomes a failed label."""

    def __init__(self, settings: OracleConfig) -> None:
        self.settings: dict[str, Any] = recorded_settings(settings) | {
            "version": engine_version(settings)}
        self.timeout_s = settings.timeout_s
        self._make = find_engine(settings.engine).calculator_factory(settings)
        self._calc: Calculator | None = None

    def _calculator(self) -> Calculator:
        """One calculator per oracle, built on first use (CHGNet takes seconds to load) and reset
        before each structure so that no result carries over."""
        if self._calc is None:
            self._calc = self._make()
        self._calc.reset()
        return self._calc

    def label(self, atoms: Atoms) -> LabelResult:
        """Energy (eV), forces (eV/Angstrom) and, when available, stress (eV/Angstrom^3)."""
        atoms = atoms.copy()
        start = time.perf_counter()
        try:
            with time_limit(self.timeout_s):
                atoms.calc = self._calculator()
                energy = float(atoms.get_potential_energy())
                forces = atoms.get_forces()
                try:
                    stress = atoms.get_stress(voigt=True).tolist()
                except PropertyNotImplementedError:
                    stress = None
        except LabelTimeout:
            self._calc = None  # interrupted mid-calculation: build a fresh one next time
            return LabelResult(ok=False, reason=f"timed out after {self.timeout_s:g} s "
                               "(oracle.timeout_s)", seconds=time.perf_counter() - start,
                               settings=self.settings)
        except Exception as err:  # noqa: BLE001 - any engine failure is data, not a crash
            return LabelResult(ok=False, reason=f"{type(err).__name__}: {err}",
                               seconds=time.perf_counter() - start, settings=self.settings)
        seconds = time.perf_counter() - start
        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            return LabelResult(ok=False, reason="non-finite energy or forces", seconds=seconds,
                               settings=self.settings)
        return LabelResult(ok=True, energy=energy, forces=forces.tolist(), stress=stress,
                           seconds=seconds, settings=self.settings)


class LabelTimeout(BaseException):
    """A calculation ran past its time limit (raised by ``time_limit``; a BaseException so
    that a calculator catching every Exception does not swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise LabelTimeout inside the block once ``seconds`` (wall clock) have passed.

    A SIGALRM timer: only in the main thread of a process (a worker's), elsewhere the block
    runs without a limit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise LabelTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
