"""The exploration policy: what to explore each iteration, and why.

It starts from the composition (metal or covalent/ionic, an estimated melting point) and adapts
after every iteration to what MD saw: runs that mostly halted call for cooler MD and smaller
strains; runs that never halted allow hotter MD, more strain and more defects. Every decision
carries its reasons; the orchestrator stores them with the iteration for the report.
"""

from __future__ import annotations

from typing import Any

from pyacemaker.composition import all_metals
from pyacemaker.records import HOTTEST, PolicyDecision
from pyacemaker.structures.strategies import exchangeable_pairs

GAS_MELTING_K = 300.0  # elements melting below this (O, N, H, ...) do not bound a solid's melting
FALLBACK_MELTING_K = 1000.0
SCHEDULES = {"metal": (0.25, 0.5, 0.8), "covalent/ionic": (0.2, 0.4, 0.7)}  # of the melting point
STRAIN_LIMITS = (0.01, 0.10)
RATIOS = {
    "metal": {"rattle": 0.3, "strain": 0.25, "vacancy": 0.15, "interstitial": 0.05,
              "antisite": 0.1, "surface": 0.1, "swap": 0.05, "random": 0.03},
    "covalent/ionic": {"rattle": 0.35, "strain": 0.25, "vacancy": 0.1, "interstitial": 0.05,
                       "antisite": 0.05, "surface": 0.15, "swap": 0.05, "random": 0.05},
}
NPT_PRESSURES_GPA = [0.0, 5.0]  # added once MD runs stop halting: the cell may relax or compress
DEFECTS = ("vacancy", "interstitial", "antisite", "swap")
EXCHANGES = ("antisite", "swap")


def melting_point(elements: list[str]) -> tuple[float, str]:
    """Estimated melting point (K) and how it was estimated: the highest elemental melting point
    among elements that are solid at room temperature (TiO2: Ti's 1941 K, close to rutile's
    2116 K)."""
    from pymatgen.core import Element

    points = {}
    for e in elements:
        value = Element(e).melting_point
        if value is not None and float(value) > GAS_MELTING_K:
            points[e] = float(value)
    if not points:
        return FALLBACK_MELTING_K, f"no solid element; assumed {FALLBACK_MELTING_K:.0f} K"
    top = max(points, key=points.get)
    return points[top], f"melting point {points[top]:.0f} K of {top}, the highest of the solids"


def initial_decision(elements: list[str], max_strain: float,
                     temperatures_k: list[float] | None = None,
                     pressures_gpa: list[float] | None = None,
                     gamma: tuple[float, float] = (5.0, 25.0)) -> PolicyDecision:
    """The first iteration's decision; user-set temperatures or pressures are kept as given,
    ``gamma`` are the configured (collect, halt) thresholds."""
    material = "metal" if all_metals(elements) else "covalent/ionic"
    melting, why = melting_point(elements)
    reasons = [f"{material} ({', '.join(elements)}); {why}"]
    if temperatures_k:
        temperatures = list(temperatures_k)
        reasons.append("temperatures set in the config")
    else:
        temperatures = [round(f * melting) for f in SCHEDULES[material]]
        reasons.append(f"temperatures {', '.join(map(str, SCHEDULES[material]))} of the "
                       f"melting point for a {material} system")
    ratios = dict(RATIOS[material])
    if not exchangeable_pairs(elements):
        for name in EXCHANGES:
            ratios.pop(name)
        reasons.append("no antisites or swaps: " + (
            "one element" if len(elements) < 2 else "metal/non-metal exchanges are unphysical"))
    return PolicyDecision(iteration=1, material=material, melting_k=melting,
                          temperatures_k=temperatures, pressures_gpa=list(pressures_gpa or []),
                          max_strain=max_strain, ratios=_normalised(ratios), gamma_collect=gamma[0],
                          gamma_halt=gamma[1], fixed_temperatures=bool(temperatures_k),
                          reasons=reasons)


def gamma_thresholds(decision: PolicyDecision, configured: tuple[float, float],
                     held_out_gamma: float | None, accurate: bool) -> PolicyDecision:
    """``decision`` with collect/halt thresholds adapted to the potential that will explore.

    A potential whose held-out errors meet the targets is reliable up to the extrapolation
    grades of its held-out structures: collect starts at 1.5 times their 90th percentile
    (never below the configured value, at most half the configured halt), and halt stays at
    least 5 times collect. Otherwise the configured thresholds apply.
    """
    collect, halt = configured
    if accurate and held_out_gamma is not None and 1.5 * held_out_gamma > collect:
        collect = min(1.5 * held_out_gamma, halt / 2)
        reason = (f"held-out errors within targets up to γ {held_out_gamma:.3g} (90th "
                  f"percentile): collect above {collect:.3g}")
    else:
        reason = f"collect above γ {collect:g}, halt at {halt:g}" + (
            "" if accurate else " (held-out errors above targets)")
    halt = max(halt, 5 * collect)
    return decision.model_copy(update={"gamma_collect": round(collect, 3), "gamma_halt": round(halt, 3),
                                       "reasons": [*decision.reasons, reason]})


def adapt(previous: PolicyDecision, halts: int, md_runs: int, fixed_temperatures: bool,
          fixed_pressures: bool = False) -> PolicyDecision:
    """The next iteration's decision from the previous one and how its MD went."""
    change: dict[str, Any] = {"iteration": previous.iteration + 1}
    if md_runs == 0:
        return previous.model_copy(update={**change, "reasons": ["no MD ran: unchanged"]})
    share = halts / md_runs
    temperatures, strain, ratios = previous.temperatures_k, previous.max_strain, previous.ratios
    pressures = previous.pressures_gpa
    if share > 0.5:
        factor, reason = 0.8, f"{halts}/{md_runs} MD runs halted: cooler MD, smaller strains"
        strain = max(STRAIN_LIMITS[0], strain * 0.75)
        if not fixed_pressures and pressures:
            pressures, reason = [], reason + ", NVT only"
    elif halts == 0:
        factor, reason = 1.25, (f"no MD run halted ({md_runs} runs): hotter MD, more strain "
                                "and more defects")
        strain = min(STRAIN_LIMITS[1], strain * 1.25)
        ratios = _normalised({k: v * (1.5 if k in DEFECTS else 1.0) for k, v in ratios.items()})
        if not fixed_pressures and not pressures:
            pressures = list(NPT_PRESSURES_GPA)
            reason += f", NPT at {' and '.join(f'{p:g}' for p in pressures)} GPa"
    else:
        return previous.model_copy(update={
            **change, "reasons": [f"{halts}/{md_runs} MD runs halted: unchanged"]})
    if not fixed_temperatures:
        hottest = HOTTEST * previous.melting_k
        temperatures = [round(min(hottest, t * factor)) for t in temperatures]
    return previous.model_copy(update={**change, "temperatures_k": temperatures,
                                       "pressures_gpa": pressures,
                                       "max_strain": round(strain, 4), "ratios": ratios,
                                       "reasons": [reason]})


def rare_events(decision: PolicyDecision, when: str, defects: bool, md_quiet: bool) -> PolicyDecision:
    """``decision`` with saddle searches and kMC switched on or off: ``when`` is the config's
    ``always``, ``never`` or ``auto``: on when a start has ``defects``, or when MD stops finding
    anything new at the hottest conditions the policy tries (at them, and the previous
    iteration's MD ran without a halt: ``md_quiet``), for what barriers hide from MD."""
    reason = None
    if when == "always":
        reason = "saddle searches and kMC every iteration (config)"
    elif when == "auto" and defects:
        reason = "a start has defects: saddle searches and kMC from them"
    elif when == "auto" and decision.at_hottest and md_quiet:
        reason = ("MD at the policy's hottest conditions found nothing new: saddle searches and "
                  "kMC from vacancies join it, for the barriers MD rarely crosses")
    if reason is None:
        return decision.model_copy(update={"kmc": False})
    return decision.model_copy(update={"kmc": True, "reasons": [*decision.reasons, reason]})


def _normalised(ratios: dict[str, float]) -> dict[str, float]:
    total = sum(ratios.values())
    return {k: round(v / total, 4) for k, v in ratios.items()}
