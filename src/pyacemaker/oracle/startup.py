"""Start-up checks and defaults the file-based (DFT) engines share."""

from __future__ import annotations

import shlex
import shutil

from pyacemaker.composition import all_metals
from pyacemaker.errors import ConfigError

# k-point spacing (1/Angstrom, 2*pi included) unless set: metals need dense grids, semiconductors
# and insulators not. Rattled 8-atom Si (ONCV, 80 Ry): 0.4 (3x3x3) is 6.5 times faster than
# 0.25 (5x5x5) and its forces differ by 0.02 eV/Angstrom RMS.
DFT_KSPACING = {"metal": 0.25, "other": 0.4}


def default_kspacing(elements: list[str]) -> float:
    """``DFT_KSPACING`` (1/Angstrom) of a composition: metal when every element is one."""
    return DFT_KSPACING["metal" if all_metals(elements) else "other"]


def require_executable(command: str, field: str, fix: str) -> None:
    """ConfigError naming ``field`` unless the command's program is on PATH."""
    program = shlex.split(command)[0]
    if shutil.which(program) is None:
        raise ConfigError(f"field '{field}': '{program}' is not an executable on PATH; {fix}")
