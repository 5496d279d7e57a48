"""Dask worker preload: make the plugin package importable under its own name in a worker process.

Dask workers unpickle region mapping's tasks by importing ``rts_fusion.pipeline.region``. Inside QGIS the plugin
folder's parent is on the path and this changes nothing; when the package is loaded from a folder of another name
(a development checkout) a worker could not import it. Region mapping's local cluster runs this file in each
worker (``preload``); for a cluster of your own start workers with ``dask worker --preload <this file> …``.
Standard library only. RTS_FUSION_PACKAGE names the package (default: ``rts_fusion``), RTS_FUSION_ROOT its
folder (default: the folder above this file's).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

PACKAGE_ENV = "RTS_FUSION_PACKAGE"
ROOT_ENV = "RTS_FUSION_ROOT"  # the plugin folder (Dask runs a copy of this file from the worker's scratch folder)


def register(name: str | None = None) -> None:
    """Import the plugin package under `name` from this file's checkout, unless it already imports."""
    name = name or os.environ.get(PACKAGE_ENV) or "rts_fusion"
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    root = os.environ.get(ROOT_ENV) or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(root, "__init__.py"), submodule_search_locations=[root]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


register()
