"""Resolving a config: the settings the user left open, inferred from the composition and the
oracle engine, and the start-up checks of each component; written back as
``config.resolved.yaml`` in the workdir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pyacemaker.config import (
    Config,
    ValidationConfig,
    default_zbl_range,
    read_config,
)
from pyacemaker.dispatch import check_executor
from pyacemaker.eon import check_rare_events
from pyacemaker.errors import ConfigError
from pyacemaker.oracle.registry import find_engine, resolve_oracle
from pyacemaker.structures.seeds import check_seeds, read_structure_file

# Seed cells for a DFT oracle unless the config sets them: the conventional or primitive cell
# (Si: 8 atoms), not 2x2x2 of it. At ONCV 80 Ry, pw.x on 64 Si atoms had not finished one label
# in 19 minutes on 2 cores; at 45 Ry a rattled 16-atom cell took 3-7 minutes and a 16-atom
# slab 8-12, against 1-2 minutes for 8 atoms. Slabs and defect cells obey the same limit.
DFT_SEEDS = {"min_cell_width": 3.5, "max_atoms": 12}
# Labels per step for a DFT oracle unless set: smaller batches let the selection steer more often
# per label and keep an iteration within minutes (Si, 2 cores: 10 labels of 8-12 atoms took
# 12-13 minutes per iteration, 8 keep two iterations and the seeds within 30).
DFT_EXPLORATION = {"seed_labels": 16, "labels_per_iteration": 8}


def load_config(path: Path | str) -> Config:
    """Read, validate and resolve a user config file.

    Raises
    ------
    ConfigError
        One message naming the field and the fix, for any invalid input.
    """
    return resolve(read_config(path))


def resolve(config: Config) -> Config:
    """Fill inferred settings and check cross-field consistency.

    Relative paths are taken relative to the current directory and made absolute.

    Raises
    ------
    ConfigError
        Naming the field and the fix.
    """
    elements = config.elements
    check_seeds(config.seeds, config.composition)
    check_executor(config.executor)
    check_rare_events(config.exploration.rare_events)
    inner, outer = default_zbl_range(elements)
    trainer = config.trainer.model_copy(
        update={
            "zbl_inner": config.trainer.zbl_inner or inner,
            "zbl_outer": config.trainer.zbl_outer or outer,
        }
    )
    if trainer.zbl_inner >= trainer.zbl_outer:
        raise ConfigError(
            f"field 'trainer.zbl_inner': {trainer.zbl_inner} must be smaller than "
            f"trainer.zbl_outer ({trainer.zbl_outer})"
        )
    exploration = config.exploration
    if exploration.gamma_collect >= exploration.gamma_halt:
        raise ConfigError(
            f"field 'exploration.gamma_collect': {exploration.gamma_collect} must be smaller "
            f"than exploration.gamma_halt ({exploration.gamma_halt})"
        )
    oracle = resolve_oracle(config.oracle, elements)
    return config.model_copy(
        update={
            "workdir": config.workdir.resolve(),
            "validation": _checked_test_structure(config.validation, elements),
            "seeds": _dft_sized(config.seeds, DFT_SEEDS, oracle.engine).model_copy(
                update={"files": [f.resolve() for f in config.seeds.files]}),
            "exploration": _dft_sized(exploration, DFT_EXPLORATION, oracle.engine),
            "oracle": oracle,
            "trainer": trainer,
        }
    )


def _checked_test_structure(validation: ValidationConfig, elements: list[str]) -> ValidationConfig:
    """``validation`` with ``structure`` made absolute, once the file reads as a usable periodic
    structure of ``elements`` (at start-up, not after the first fit)."""
    path = validation.structure
    if path is None:
        return validation
    if not path.is_file():
        raise ConfigError(f"field 'validation.structure': file '{path}' not found (relative paths "
                          "are relative to the current directory)")
    read_structure_file(path, dict.fromkeys(elements, 1), "validation.structure")
    return validation.model_copy(update={"structure": path.resolve()})


def _dft_sized(section: BaseModel, defaults: dict[str, Any], engine: str) -> BaseModel:
    """``section`` with the ``defaults`` for a file-based (DFT) ``engine`` (``DFT_SEEDS``,
    ``DFT_EXPLORATION``) wherever the config leaves them open."""
    if find_engine(engine).cheap:
        return section
    return section.model_copy(
        update={k: v for k, v in defaults.items() if k not in section.model_fields_set})
