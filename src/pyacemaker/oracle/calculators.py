"""Oracles backed by ASE calculators: EMT, tblite (GFN1/GFN2-xTB), CHGNet, any class by import
path."""

from __future__ import annotations

import contextlib
import importlib
import io
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError

from pyacemaker.config import CHGNET_MODELS, DEFAULT_TBLITE_METHOD, OracleConfig
from pyacemaker.errors import ConfigError
from pyacemaker.oracle.base import recorded_settings
from pyacemaker.records import LabelResult


def calculator_factory(settings: OracleConfig) -> Callable[[], Calculator]:
    """A function that builds a fresh calculator for ``settings``.

    Raises
    ------
    ConfigError
        When the engine's module or class cannot be imported.
    """
    params = dict(settings.parameters)
    if settings.engine == "emt":
        from ase.calculators.emt import EMT

        return lambda: EMT(**params)
    if settings.engine == "tblite":
        try:
            from tblite.ase import TBLite
        except ImportError as err:
            raise ConfigError(
                "field 'oracle.engine': tblite is not installed; `pip install tblite`"
            ) from err
        params.setdefault("verbosity", 0)
        return lambda: TBLite(method=settings.method or DEFAULT_TBLITE_METHOD, **params)
    if settings.engine == "chgnet":
        return lambda: chgnet_calculator(settings.model or CHGNET_MODELS[0], params)
    _, module_name, class_name = settings.engine.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"field 'oracle.engine': cannot import {class_name} from {module_name} ({err}); "
            "check the spelling and that the module is installed in this environment"
        ) from err
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
    package = {"tblite": "tblite", "chgnet": "chgnet", "emt": "ase"}.get(settings.engine)
    if package is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return None


class CalculatorOracle:
    """Labels structures with an ASE calculator; a calculator exception becomes a failed label."""

    def __init__(self, settings: OracleConfig) -> None:
        self.settings: dict[str, Any] = recorded_settings(settings) | {
            "version": engine_version(settings)}
        self._make = calculator_factory(settings)
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
            atoms.calc = self._calculator()
            energy = float(atoms.get_potential_energy())
            forces = atoms.get_forces()
            try:
                stress = atoms.get_stress(voigt=True).tolist()
            except PropertyNotImplementedError:
                stress = None
        except Exception as err:  # noqa: BLE001 - any engine failure is data, not a crash
            return LabelResult(ok=False, reason=f"{type(err).__name__}: {err}",
                               seconds=time.perf_counter() - start, settings=self.settings)
        seconds = time.perf_counter() - start
        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            return LabelResult(ok=False, reason="non-finite energy or forces", seconds=seconds,
                               settings=self.settings)
        return LabelResult(ok=True, energy=energy, forces=forces.tolist(), stress=stress,
                           seconds=seconds, settings=self.settings)
