"""The README's main job, headless: create the sample scene and fuse it through the plugin's algorithms."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_plugin() -> None:
    """Import the repository root as the package rts_fusion (its installed name in QGIS)."""
    spec = importlib.util.spec_from_file_location(
        "rts_fusion", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["rts_fusion"] = module
    spec.loader.exec_module(module)


def main() -> int:
    """Run the demo; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "demo_output"), help="output folder")
    parser.add_argument("--size", type=int, default=512, help="sample scene size in pixels")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    import processing
    from processing.core.Processing import Processing

    Processing.initialize()
    _import_plugin()
    from rts_fusion.processing_provider.provider import RtsFusionProvider

    provider = RtsFusionProvider()  # keep a reference: the registry does not own the Python object
    QgsApplication.processingRegistry().addProvider(provider)
    import numpy as np
    import rasterio

    out = Path(args.out)
    scene = processing.run("rtsfusion:samplescene", {"SIZE": args.size, "SEED": 42, "FOLDER": str(out / "scene")})
    print(f"Sample scene: {scene['N_SLUMPS']} slumps in {out / 'scene'}")
    stack = processing.run(
        "rtsfusion:alignfuse",
        {
            "OPTICAL": scene["OPTICAL"],
            "THERMAL": scene["THERMAL"],
            "DEM": scene["DEM"],
            "TEMPERATURE_SERIES": scene["TEMPERATURE_SERIES"],
            "PRESET": 1,
            "OUTPUT": str(out / "fused_stack.tif"),
        },
    )["OUTPUT"]
    with rasterio.open(stack) as ds:
        print(f"Fused stack: {stack}\n  {ds.width} × {ds.height} px, {ds.crs}, pixel {ds.res[0]} m")
        print(f"  {'band':<13}{'group':<10}{'units':<8}{'mean':>10}{'std':>10}")
        for i, name in enumerate(ds.descriptions, start=1):
            band = ds.read(i, masked=True)
            tags = ds.tags(i)
            mean, std = float(band.mean()), float(np.std(band))
            print(f"  {name:<13}{tags['GROUP']:<10}{tags['UNITS']:<8}{mean:>10.4g}{std:>10.4g}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
