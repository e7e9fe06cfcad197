"""eOn's client as the dimer engine, with our potential through its external-potential bridge.

eonclient is built by `make eon` (a dependency of `make test`); without it these tests skip,
saying so.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyacemaker.config import RareEventsConfig
from pyacemaker.eon import check_rare_events, eon_dimer_search, find_eonclient
from pyacemaker.errors import ConfigError, EngineSetupError
from pyacemaker.kmc import KMCRun, run_kmc
from pyacemaker.saddles import (
    Extrapolating,
    GuardedCalculator,
    connected_minimum,
    max_displacement,
    minimized,
)
from pyacemaker.structures import defect_atoms
from tests.conftest import vacancy_hop

HALT = 25.0


@pytest.fixture(scope="module")
def eonclient() -> list[str]:
    try:
        return find_eonclient()
    except EngineSetupError as err:
        pytest.skip(f"eonclient not built here ({err})")


def test_eon_dimer_with_our_potential_finds_the_vacancy_hop(eonclient, vacancy_fit):
    calc = GuardedCalculator(vacancy_fit, HALT)
    initial, _ = vacancy_hop()
    minimum = minimized(initial, calc)
    minimum.calc = calc
    start_energy = minimum.get_potential_energy()
    rng = np.random.default_rng(5)
    before = calc.calls
    saddle = eon_dimer_search(minimum, calc, rng, int(rng.choice(defect_atoms(minimum))), eonclient)
    assert saddle is not None
    assert calc.calls - before > 50  # every force call of eOn's dimer went through our potential
    assert abs(saddle.energy - start_energy - 0.76) < 0.05  # EMT's hop barrier in this cell
    hopped = connected_minimum(minimum, saddle, calc)
    assert hopped is not None and max_displacement(minimum, hopped) > 2.0


def test_eon_search_halts_where_the_potential_extrapolates(eonclient, copper_fit):
    bulk_only, _, _ = copper_fit
    calc = GuardedCalculator(bulk_only, HALT)
    initial, _ = vacancy_hop()
    minimum = minimized(initial, calc)
    rng = np.random.default_rng(0)
    with pytest.raises(Extrapolating) as halted:
        for _ in range(4):
            eon_dimer_search(minimum, calc, rng, int(rng.choice(defect_atoms(minimum))), eonclient)
    assert halted.value.gamma > HALT and len(halted.value.atoms) == 31


def test_kmc_with_eon_returns_halted_candidates(eonclient, copper_fit):
    bulk_only, _, _ = copper_fit
    initial, _ = vacancy_hop()
    run = KMCRun("kmc00", "file:vacancy", initial, 600.0, steps=1, searches=1, gamma_collect=5.0,
                 gamma_halt=HALT, prefactor_hz=None, neb_images=3, seed=1, engine="eon")
    outcome = run_kmc(bulk_only.files(), run)
    assert outcome.status == "halted" and outcome.error is None
    assert any(c.gamma > HALT and c.provenance["stage"] == "dimer" for c in outcome.candidates)


def test_engine_eon_needs_eonclient_at_start_up(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYACEMAKER_CACHE_DIR", str(tmp_path / "cache"))
    check_rare_events(RareEventsConfig())  # ase: nothing to find
    with pytest.raises(ConfigError, match="rare_events.engine.*make eon"):
        check_rare_events(RareEventsConfig(engine="eon"))
    with pytest.raises(ConfigError, match="rare_events.eon_command.*not an executable"):
        check_rare_events(RareEventsConfig(engine="eon", eon_command=str(tmp_path / "eonclient")))


def test_doctor_reports_the_eon_client(tmp_path, monkeypatch):
    from pyacemaker.doctor import eon_client

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYACEMAKER_CACHE_DIR", str(tmp_path / "cache"))
    missing = eon_client()
    assert not missing.ok and not missing.required and "make eon" in missing.detail
    fake = tmp_path / "cache" / "eon" / "venv" / "bin" / "eonclient"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert eon_client().ok and eon_client().detail == str(fake)
