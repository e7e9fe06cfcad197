"""The user's cache folder: built engine plugins and measured pseudopotential cutoffs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$PYACEMAKER_CACHE_DIR``, else ``$XDG_CACHE_HOME/pyacemaker``, else ``~/.cache/pyacemaker``."""
    if os.environ.get("PYACEMAKER_CACHE_DIR"):
        return Path(os.environ["PYACEMAKER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pyacemaker"
