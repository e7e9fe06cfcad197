#!/usr/bin/env python3
"""Patch an unpacked eon-akmc 3.6.0 sdist for an offline build.

usage: patch_sdist.py SRC_DIR READCON_SO LIBPYTHON_SO
 - readcon-core: use the prebuilt C ABI from the readcon==0.16.0 wheel
   (READCON_SO) instead of cargo (crates cannot be fetched offline);
 - generate abort() stubs for the Python C-API symbols it references
   (classified as function/data with LIBPYTHON_SO's dynamic symbol table);
 - install libreadcon_core.so next to eonclient's libs (install script).
"""
import re, shutil, subprocess, sys
from pathlib import Path

src, so, libpy = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
here = Path(__file__).resolve().parent
rc = src / "subprojects" / "readcon-core"
pre = rc / "prebuilt"
pre.mkdir(exist_ok=True)
dst = pre / "libreadcon_core.so"
shutil.copy2(so, dst)
subprocess.run(["patchelf", "--set-soname", "libreadcon_core.so", str(dst)], check=True)

und = subprocess.run(["nm", "-D", "--undefined-only", str(dst)], capture_output=True,
                     text=True, check=True).stdout.split()
need = sorted({s for s in und if re.match(r"^_?Py", s)})
defs = {}
for line in subprocess.run(["nm", "-D", "-S", "--defined-only", str(libpy)],
                           capture_output=True, text=True, check=True).stdout.splitlines():
    p = line.split()
    if len(p) == 4:
        defs[p[3]] = (p[2], int(p[1], 16))
out = ["/* generated: Python C-API stubs; never called by eonclient */",
       "#include <stdlib.h>"]
for s in need:
    kind, size = defs.get(s, ("T", 0))
    if kind in "Tt":
        out.append(f"void {s}(void) {{ abort(); }}")
    else:
        out.append(f"__attribute__((aligned(16))) char {s}[{max(size, 16)}];")
(pre / "pystub.c").write_text("\n".join(out) + "\n")
shutil.copy2(here / "readcon_prebuilt_meson.build", rc / "meson.build")

# install the prebuilt lib into libdir (meson-python: see install script)
shutil.copy2(here / "install_readcon_prebuilt.py", src / "scripts" / "install_readcon_prebuilt.py")
cm = src / "client" / "meson.build"
t = cm.read_text()
anchor = "    readcon_dep = readcon_proj.get_variable('readcon_dep')\n"
assert anchor in t, "anchor not found in client/meson.build"
if "install_readcon_prebuilt" not in t:
    t = t.replace(anchor, anchor +
        "    meson.add_install_script(\n"
        "        find_program(meson.project_source_root() / 'scripts' / 'install_readcon_prebuilt.py'),\n"
        "        readcon_proj.get_variable('readcon_cargo')[0].full_path(),\n"
        "        get_option('libdir'),\n"
        "    )\n")
    cm.write_text(t)
print(f"patched {src}: {len(need)} python stubs")
