"""The one registry of oracle engines: ``oracle.engine`` name -> how the engine is described,
configured, checked and built. A new engine is one entry here.

Engine code is named by ``"module:attribute"`` and imported only when used, so that reading
the registry (help texts, validation) stays cheap and imports no engine.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyacemaker.errors import ConfigError

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator

    from pyacemaker.config import OracleConfig
    from pyacemaker.oracle.base import Oracle

CALCULATORS = "pyacemaker.oracle.calculators"


@dataclass(frozen=True)
class Engine:
    """One oracle engine.

    ``factory``, ``calculator`` and ``resolver`` are ``"module:attribute"`` references:
    ``factory(settings: OracleConfig, scratch: Path) -> Oracle``;
    ``calculator(settings: OracleConfig) -> () -> Calculator`` (builds fresh ASE calculators;
    None for file-based engines); ``resolver(oracle: OracleConfig, elements: list[str]) ->
    OracleConfig`` (the engine's inferred settings and start-up checks; raises ConfigError).
    """

    name: str  # as written in ``oracle.engine``
    description: str  # one line for help texts
    factory: str = f"{CALCULATORS}:calculator_oracle"
    calculator: str | None = None
    resolver: str | None = None
    section: str | None = None  # the OracleConfig sub-model holding its settings (espresso: dft)
    options: tuple[str, ...] = ()  # other OracleConfig fields only this engine reads
    package: str | None = None  # distribution whose version is stored with every label

    @property
    def cheap(self) -> bool:
        """Calculator-like (seconds per label, fine to call in-process, e.g. for validation
        references); otherwise file-based and minutes to hours per label (DFT)."""
        return self.calculator is not None

    def make(self, settings: OracleConfig, scratch: Path) -> Oracle:
        """The oracle for ``settings``; file-based engines work in folders under ``scratch``."""
        return _load(self.factory)(settings, scratch)

    def calculator_factory(self, settings: OracleConfig) -> Callable[[], Calculator] | None:
        """A builder of fresh ASE calculators for ``settings``; None for a file-based engine.
        Raises ConfigError when the calculator cannot be imported."""
        return _load(self.calculator)(settings) if self.calculator else None

    def resolve(self, oracle: OracleConfig, elements: list[str]) -> OracleConfig:
        """``oracle`` with this engine's inferred settings, checked for ``elements``."""
        return _load(self.resolver)(oracle, elements) if self.resolver else oracle


IMPORT_PATH = "ase:<module>:<Class>"
ENGINES: dict[str, Engine] = {e.name: e for e in (
    Engine("emt", "ASE's EMT for a few fcc metals; instant, for tests",
           calculator=f"{CALCULATORS}:emt_factory", resolver=f"{CALCULATORS}:resolve_emt",
           package="ase"),
    Engine("tblite", "GFN1/GFN2-xTB tight binding (Gamma point only); < 1 s a cell",
           calculator=f"{CALCULATORS}:tblite_factory", resolver=f"{CALCULATORS}:resolve_tblite",
           options=("method",), package="tblite"),
    Engine("chgnet", "pretrained CHGNet ML potential (PBE/PBE+U, r2SCAN); ~1 s a cell",
           calculator=f"{CALCULATORS}:chgnet_factory",
           resolver=f"{CALCULATORS}:resolve_chgnet", options=("model",), package="chgnet"),
    Engine("espresso", "Quantum ESPRESSO plane-wave DFT (pw.x); minutes a label",
           factory="pyacemaker.oracle.espresso:EspressoOracle",
           resolver="pyacemaker.oracle.espresso_setup:resolve_espresso", section="dft"),
    Engine("vasp", "VASP plane-wave DFT (your binary, POTCARs); minutes a label",
           factory="pyacemaker.oracle.vasp:VaspOracle",
           resolver="pyacemaker.oracle.vasp:resolve_vasp", section="vasp"),
    Engine(IMPORT_PATH, "any ASE calculator, e.g. ase:ase.calculators.emt:EMT",
           calculator=f"{CALCULATORS}:import_path_factory",
           resolver=f"{CALCULATORS}:resolve_import_path"),
)}


def _load(reference: str) -> Callable[..., Any]:
    """The object a ``"module:attribute"`` reference names."""
    module, attribute = reference.split(":")
    return getattr(importlib.import_module(module), attribute)


def find_engine(name: str) -> Engine:
    """The engine ``oracle.engine`` names (``ase:<module>:<Class>`` for any ASE calculator).

    Raises
    ------
    ConfigError
        For an unknown name, listing the known engines.
    """
    parts = name.split(":")
    if len(parts) == 3 and parts[0] == "ase" and all(parts[1:]):
        return ENGINES[IMPORT_PATH]
    if name in ENGINES:
        return ENGINES[name]
    close = difflib.get_close_matches(name, list(ENGINES), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"field 'oracle.engine': unknown engine '{name}'{hint}; use one of\n"
                      f"{engine_table()}")


def engine_names(cheap_only: bool = False) -> str:
    """The engine names as a phrase: ``emt, tblite, ... or ase:<module>:<Class>``."""
    names = [e.name for e in ENGINES.values() if e.cheap or not cheap_only]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def engine_table(prefix: str = "  ") -> str:
    """One line per engine, ``prefix``, its name and its description."""
    width = max(len(name) for name in ENGINES)
    return "\n".join(f"{prefix}{e.name:<{width}}  {e.description}" for e in ENGINES.values())


def resolve_oracle(oracle: OracleConfig, elements: list[str]) -> OracleConfig:
    """``oracle`` with its engine's inferred settings, checked for ``elements``.

    Raises
    ------
    ConfigError
        For an unknown engine, another engine's option, or what the engine's own checks find.
    """
    engine = find_engine(oracle.engine)
    for other in ENGINES.values():
        for option in set(other.options) - set(engine.options):
            if getattr(oracle, option) is not None:
                raise ConfigError(f"field 'oracle.{option}': only {other.name} has {option}s; "
                                  "remove it")
    return engine.resolve(oracle, elements)


def make_oracle(settings: OracleConfig, scratch: Path) -> Oracle:
    """The oracle for ``settings``; file-based engines work in folders under ``scratch``."""
    return find_engine(settings.engine).make(settings, scratch)


def recorded_settings(config: OracleConfig) -> dict[str, Any]:
    """The oracle settings stored with every label: the engine's own, without worker counts
    or the sections of other engines."""
    own = find_engine(config.engine).section
    unused = {e.section for e in ENGINES.values() if e.section not in (None, own)}
    return config.model_dump(mode="json", exclude={"workers", *unused})
