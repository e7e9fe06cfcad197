#!/usr/bin/env python3
"""Copy the prebuilt libreadcon_core.so into PREFIX/LIBDIR (install script)."""
import os, shutil, sys
from pathlib import Path
src = Path(sys.argv[1])
prefix = Path(os.environ["MESON_INSTALL_DESTDIR_PREFIX"])
libdir = Path(sys.argv[2])
dest = libdir if libdir.is_absolute() else prefix / libdir
dest.mkdir(parents=True, exist_ok=True)
shutil.copy2(src, dest / src.name)
