"""Small result types shared between layers; this module imports nothing of pyacemaker's."""

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
