"""The oracle's locality probe (``oracle/locality.py``) for a run: computed once per test
structure, oracle settings, cutoff and probe settings, and cached in
``<workdir>/validation/locality.json``. A diagnostic shown by ``pyacemaker doctor`` and the
validation report, never a pass/fail check."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ValidationError

from pyacemaker.config import Config
from pyacemaker.errors import CalculationFailed
from pyacemaker.oracle.locality import LocalityProbe, LocalitySettings, Progress, probe_locality
from pyacemaker.oracle.registry import find_engine, make_oracle
from pyacemaker.timing import engine_call
from pyacemaker.workdir import RunPaths, write_file

log = logging.getLogger(__name__)

LOCALITY_FORMAT = 1  # bump when LocalityProbe or its computation changes


class CachedLocality(BaseModel):
    """``locality.json``: the probe and the key it was computed for."""

    key: str
    probe: LocalityProbe


def locality_key(structure: Atoms, config: Config, settings: LocalitySettings) -> str:
    """SHA-256 of the structure, the oracle's settings (without ``workers``), the potential's
    cutoff and the probe's settings."""
    payload = {
        "format": LOCALITY_FORMAT,
        "structure": {"numbers": structure.numbers.tolist(), "pbc": structure.pbc.tolist(),
                      "cell": np.round(structure.cell.array, 8).tolist(),
                      "positions": np.round(structure.get_scaled_positions(wrap=False), 8).tolist()},
        "oracle": config.oracle.model_dump(mode="json", exclude={"workers"}),
        "cutoff": config.trainer.nominal_cutoff(config.elements),
        "probe": settings.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cached_locality(structure: Atoms, config: Config, workdir: Path,
                    settings: LocalitySettings | None = None) -> LocalityProbe | None:
    """The probe stored in ``<workdir>/validation/locality.json`` when its key matches, else
    None."""
    path = RunPaths(workdir).locality
    if not path.is_file():
        return None
    try:
        cached = CachedLocality.model_validate_json(path.read_text())
    except ValidationError:  # an older format: computed again
        return None
    key = locality_key(structure, config, settings or LocalitySettings())
    return cached.probe if cached.key == key else None


def run_locality(structure: Atoms, config: Config, workdir: Path,
                 settings: LocalitySettings | None = None, expensive: bool = False,
                 progress: Progress | None = None) -> LocalityProbe | None:
    """The oracle's locality probe on ``structure`` around the run's nominal cutoff (the fixed
    one, or the bond-length default that ``cutoff: auto`` chooses around): read from the cache
    when its key matches, else computed and stored there. A file-based oracle (DFT) is probed
    only when ``expensive`` is set (its labels take minutes to hours each); otherwise None.

    Raises
    ------
    CalculationFailed
        When the oracle fails on a probe cell.
    ConfigError
        When the oracle's calculator cannot be imported.
    """
    settings = settings or LocalitySettings()
    found = cached_locality(structure, config, workdir, settings)
    if found is not None:
        return found
    engine = find_engine(config.oracle.engine)
    if not (engine.cheap or expensive):
        return None
    build = engine.calculator_factory(config.oracle)
    oracle = build() if build else make_oracle(config.oracle, Path(tempfile.gettempdir()))
    with engine_call():
        probe = probe_locality(structure, oracle, config.trainer.nominal_cutoff(config.elements), settings,
                               config.oracle.engine, progress)
    path = RunPaths(workdir).locality
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, CachedLocality(key=locality_key(structure, config, settings),
                                    probe=probe).model_dump_json())
    return probe


def locality_or_none(structure: Atoms, config: Config, workdir: Path,
                     progress: Progress | None = None) -> LocalityProbe | None:
    """``run_locality`` for the validation report: cached, or computed for a cheap oracle; a
    failure is logged and gives None (a diagnostic never stops a validation)."""
    try:
        return run_locality(structure, config, workdir, progress=progress)
    except CalculationFailed as err:
        log.warning("locality probe skipped: %s", err)
        return None


def locality_table(probe: LocalityProbe):
    """The probe as a rich table: R against the force change (all, per element) and floor."""
    from rich.table import Table

    table = Table("R (Å)", "force change (eV/Å)", *probe.force_spread_by_element, "floor (eV/Å)",
                  title=f"oracle locality: {probe.oracle}, {probe.n_atoms} atoms, "
                        f"{probe.n_calls} calls, {probe.seconds:.0f} s")
    for k, radius in enumerate(probe.radii):
        mark = " (cutoff)" if radius == probe.cutoff else ""
        table.add_row(f"{radius:g}{mark}", f"{probe.force_spread[k]:.3g}",
                      *(f"{spread[k]:.3g}" for spread in probe.force_spread_by_element.values()),
                      f"{probe.floor[k]:.3g}")
    return table
