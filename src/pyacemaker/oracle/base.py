"""The oracle protocol: reference labels for structures, failures as data."""

from __future__ import annotations

from typing import Any, Protocol

from ase import Atoms

from pyacemaker.config import OracleConfig
from pyacemaker.oracle.registry import ENGINES, find_engine
from pyacemaker.records import LabelResult


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
