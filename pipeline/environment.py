"""Python path set-up for the plugin's private package folder, and a check that the deep-learning stack imports.

It also picks QGIS's own Python interpreter (the dependency installer, the worker process and region mapping's Dask
workers start it; sys.executable is the QGIS binary on Windows and macOS). Standard library only: QGIS's Python, the
worker process and the installer's own check run this file before anything heavy is imported (it also runs as a
script: ``python environment.py --check FOLDER`` prints a JSON report). The folder goes before the interpreter's
site-packages/dist-packages, so that what the installer put there (a current sympy for torch, say) wins over older
system copies; the installer never puts numpy, GDAL or Qt there (see NEVER_PRIVATE), so QGIS's own builds of those
stay in use.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable

# Top-level names the private folder must never hold: QGIS's numpy, GDAL and Qt bindings are built together.
NEVER_PRIVATE = ("numpy", "osgeo", "GDAL", "gdal", "PyQt5", "PyQt6", "sip", "qgis", "rasterio")
# What the deep-learning algorithms import; the check imports each (and the names in PROBES).
REQUIRED = ("torch", "transformers", "safetensors", "skimage")
# What mapping with an exported .onnx model imports: ONNX Runtime instead of torch (the "mapping only" install).
MAPPING_ONLY = ("onnxruntime", "skimage")
PROBES = {"transformers": "from transformers import SegformerConfig, SegformerModel"}
SYSTEM = ("numpy", "osgeo.gdal", "rasterio", "scipy")


def _is_site_dir(path: str) -> bool:
    name = os.path.basename(os.path.normpath(path)) if path else ""
    return name in ("site-packages", "dist-packages")


def prepend_deps_folder(folder: str, path: list[str] | None = None) -> bool:
    """Put `folder` on the module search path just before the first site-packages/dist-packages entry.

    Args:
        folder: the private package folder.
        path: the list to edit (default sys.path).

    Returns:
        Whether the folder exists (and is now on the path).

    """
    path = sys.path if path is None else path
    if not os.path.isdir(folder):
        return False
    folder = os.path.abspath(folder)
    path[:] = [p for p in path if os.path.abspath(p or ".") != folder or not p]
    index = next((i for i, p in enumerate(path) if _is_site_dir(p)), len(path))
    path.insert(index, folder)
    importlib.invalidate_caches()
    return True


def import_report(folder: str | None = None, required: tuple[str, ...] = REQUIRED) -> dict:
    """Import the deep-learning stack (after applying `folder`) and the system geodata stack; say what fails.

    `required` is the stack to check: REQUIRED (PyTorch: training and mapping) or MAPPING_ONLY (ONNX Runtime).

    Returns:
        {"python": executable, "version": "3.x.y", "folder": folder,
         "modules": {name: {"version", "file"} or {"error"}}, "ok": bool,
         "problems": [messages a user can act on]}

    """
    if folder:
        prepend_deps_folder(folder)
    modules: dict[str, dict] = {}
    problems: list[str] = []
    for name in (*required, *SYSTEM):
        try:
            module = importlib.import_module(name)
            if name in PROBES:
                exec(PROBES[name], {})  # noqa: S102 - a fixed statement: the classes the models build on
            modules[name] = {
                "version": str(getattr(module, "__version__", "") or getattr(module, "VersionInfo", lambda: "?")()),
                "file": getattr(module, "__file__", "") or "",
            }
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            modules[name] = {"error": f"{exc.__class__.__name__}: {exc}"}
            problems.append(f"{name} does not import: {exc.__class__.__name__}: {exc}")
    if folder:
        private = os.path.abspath(folder) + os.sep
        for name in NEVER_PRIVATE:
            file = modules.get(name, {}).get("file", "")
            if file and os.path.abspath(file).startswith(private):
                problems.append(f"{name} is loaded from the plugin's folder {folder}, not from QGIS: remove it there.")
    return {
        "python": sys.executable,
        "version": ".".join(map(str, sys.version_info[:3])),
        "folder": folder,
        "modules": modules,
        "ok": not problems,
        "problems": problems,
    }


def python_candidates(prefix: str, version: tuple[int, int], windows: bool) -> list[str]:
    """Where an interpreter of `version` lives under an installation prefix, most specific name first."""
    major, minor = version
    if windows:  # OSGeo4W and the standalone installer: <root>\apps\Python3xx\python.exe is sys.prefix
        return [os.path.join(prefix, "python.exe"), os.path.join(prefix, "python3.exe")]
    names = (f"python{major}.{minor}", f"python{major}", "python")
    return [os.path.join(prefix, "bin", n) for n in names]


def probe_python(path: str) -> tuple[tuple[int, int], str] | None:
    """(version, prefix) an interpreter reports, or None when it does not run."""
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print(sys.version_info[0], sys.version_info[1], sys.prefix)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split(maxsplit=2)
        return (int(out[0]), int(out[1])), out[2].strip()
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def choose_python(
    executable: str,
    prefix: str,
    exec_prefix: str,
    version: tuple[int, int],
    windows: bool,
    probe: Callable[[str], tuple[tuple[int, int], str] | None] | None = probe_python,
) -> str | None:
    """The interpreter that belongs to the running QGIS Python: same version, same prefix.

    sys.executable cannot be trusted: it is the QGIS binary on Windows and macOS and may be a shim of another
    Python on PATH on Linux. Candidates are sys.executable when it is named like a Python and lives under the
    prefix, then the usual names under sys.exec_prefix and sys.prefix. Each existing candidate is run (`probe`) and
    kept only if it reports the same major.minor version and the same prefix.

    Returns:
        The interpreter's path, or None when none matches.

    """
    seen: list[str] = []
    base = os.path.basename(executable).lower()
    roots = [os.path.normcase(os.path.abspath(p)) for p in (prefix, exec_prefix)]
    under_prefix = any(os.path.normcase(os.path.abspath(executable)).startswith(r + os.sep) for r in roots)
    if executable and base.startswith("python") and not base.startswith("pythonw") and under_prefix:
        seen.append(executable)
    for root in dict.fromkeys((exec_prefix, prefix)):
        seen += python_candidates(root, version, windows)
    want = os.path.normcase(os.path.realpath(prefix))
    for path in dict.fromkeys(seen):
        if not os.path.isfile(path):
            continue
        if probe is None:
            return path
        found = probe(path)
        if found and found[0] == version and os.path.normcase(os.path.realpath(found[1])) == want:
            return path
    return None


def qgis_python() -> str:
    """QGIS's own Python interpreter (for pip, the import check and the worker process).

    Raises:
        RuntimeError: no interpreter of this QGIS's version and prefix was found (names where it looked).

    """
    found = choose_python(sys.executable or "", sys.prefix, sys.exec_prefix, sys.version_info[:2], os.name == "nt")
    if found is None:
        raise RuntimeError(
            f"Cannot find QGIS's Python {sys.version_info[0]}.{sys.version_info[1]} under {sys.exec_prefix}; "
            "install the packages by hand as the README explains."
        )
    return found


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or sys.argv[1] not in ("--check", "--check-mapping"):
        sys.stderr.write("usage: environment.py --check|--check-mapping [FOLDER]\n")
        sys.exit(2)
    stack = MAPPING_ONLY if sys.argv[1] == "--check-mapping" else REQUIRED
    report = import_report(sys.argv[2] if len(sys.argv) == 3 else None, stack)
    sys.stdout.write("RTSFUSION-CHECK " + json.dumps(report) + "\n")
    sys.exit(0 if report["ok"] else 1)
