"""The oracle protocol: reference labels for structures, failures as data."""

from __future__ import annotations

from typing import Any, Protocol

from ase import Atoms

from pyacemaker.records import LabelResult


class Oracle(Protocol):
    """Anything that labels one structure; never raises for a per-structure failure."""

    settings: dict[str, Any]

    def label(self, atoms: Atoms) -> LabelResult: ...
