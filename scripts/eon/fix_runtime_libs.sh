#!/usr/bin/env bash
# After `pip install` of eon-akmc: meson-python puts eOn's shared libs in
# site-packages/.eon_akmc.mesonpy.libs but gives bin/eonclient a RUNPATH of
# $ORIGIN/../../.eon_akmc.mesonpy.libs (wrong for scripts/), and the wrap-built
# librgpot.so.3 and the prebuilt libreadcon_core.so are not in the wheel
# (their install scripts do not run under meson-python). Fix both.
#   usage: fix_runtime_libs.sh VENV BUILD_DIR
set -euo pipefail
VENV=$1; BUILD=$2
SP=$("$VENV/bin/python" -c 'import sysconfig;print(sysconfig.get_paths()["platlib"])')
LIBS="$SP/.eon_akmc.mesonpy.libs"
mkdir -p "$LIBS"
cp -a "$BUILD"/subprojects/rgpot/CppCore/librgpot.so.3* "$LIBS/"
cp -a "$BUILD"/subprojects/readcon-core/libreadcon_core.so "$LIBS/"
rm -rf "$LIBS"/*.p
for f in "$LIBS"/*.so "$LIBS"/*.so.*; do
  [ -L "$f" ] || patchelf --set-rpath '$ORIGIN' "$f"
done
REL=$(realpath --relative-to="$VENV/bin" "$LIBS")
patchelf --set-rpath "\$ORIGIN/$REL" "$VENV/bin/eonclient"
if ldd "$VENV/bin/eonclient" | grep -q "not found"; then
  ldd "$VENV/bin/eonclient" | grep "not found"; exit 1
fi
echo "eonclient runtime libraries OK ($LIBS)"
