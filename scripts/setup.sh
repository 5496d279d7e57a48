#!/usr/bin/env bash
# Take a fresh Debian 12 or 13 machine to a working RTS Fusion development environment. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qgis python3-qgis qgis-providers python3-gdal python3-rasterio python3-venv gdal-bin xvfb xauth)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The venv must see QGIS's bindings and Debian's GDAL/rasterio, hence system site packages.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
# numpy stays the version Debian's GDAL/rasterio were built against (1.24 on Debian 12, 2.x on Debian 13): read it
# from the system's Python and hold pip to it, never a hard-coded "<2".
NUMPY_VERSION=$(/usr/bin/python3 -c "import numpy; print(numpy.__version__)")
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "numpy==${NUMPY_VERSION}" > "$CONSTRAINTS"
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS")
# torch first and pinned to the CPU build (the +cpu label exists only on PyTorch's index): PyPI's torch for Linux is
# the multi-GB CUDA build, which an unlabelled pin (or a torch pulled in later) would fetch.
# A machine whose pip already finds that build (a local wheel) skips the extra index, whose lookups would be
# retried for every dependency where it cannot be reached.
"${PIP[@]}" "torch==2.13.0+cpu" 2>/dev/null ||
  "${PIP[@]}" "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
"${PIP[@]}" -r requirements-dev.txt
echo "setup: environment ready in .venv (numpy ${NUMPY_VERSION}, the system's)"
