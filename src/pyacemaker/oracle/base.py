"""The oracle protocol: reference labels for structures, failures as data."""

from __future__ import annotations

from typing import Any, Protocol

from ase import Atoms
from pydantic import BaseModel, Field

from pyacemaker.config import OracleConfig
from pyacemaker.oracle.registry import ENGINES, find_engine


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


def recorded_settings(config: OracleConfig) -> dict[str, Any]:
    """The oracle settings stored with every label: the engine's own, without worker counts
    or the sections of other engines."""
    own = find_engine(config.engine).section
    unused = {e.section for e in ENGINES.values() if e.section not in (None, own)}
    return config.model_dump(mode="json", exclude={"workers", *unused})


class Oracle(Protocol):
    """Anything that labels one structure; never raises for a per-structure failure."""

    settings: dict[str, Any]

    def label(self, atoms: Atoms) -> LabelResult: ...
