"""Labelling as a task: a function of data that runs in any worker, on any machine.

The oracle is built once per worker process and kept for the settings it was built with
(CHGNet takes seconds to load); file-based codes work in the worker's temporary folder and
return the files worth keeping inside the result.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ase import Atoms

from pyacemaker.config import OracleConfig
from pyacemaker.oracle.base import Oracle
from pyacemaker.oracle.registry import make_oracle, recorded_settings
from pyacemaker.records import LabelResult

_oracles: dict[str, Oracle] = {}


def label(settings: OracleConfig, atoms: Atoms) -> LabelResult:
    """The reference label of ``atoms``; a failed calculation is a result with its reason."""
    key = settings.model_dump_json()
    if key not in _oracles:
        _oracles[key] = make_oracle(settings, Path(tempfile.gettempdir()) / "pyacemaker-labels")
    return _oracles[key].label(atoms)


def lost_label(settings: OracleConfig, reason: str) -> LabelResult:
    """The failed label of a structure whose worker died every time it was labelled (the
    dispatcher's ``on_lost``)."""
    return LabelResult(ok=False, reason=reason, settings=recorded_settings(settings))
