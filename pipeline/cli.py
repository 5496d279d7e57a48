"""Console commands for batch jobs on servers: ``python -m rts_fusion map-region …`` (no QGIS needed).

Run it from the folder that holds the plugin folder ``rts_fusion`` (or with that folder's parent on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ..core.errors import OperationCanceled, RtsFusionError

USER_ERROR, CANCELED = 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rts_fusion", description="RTS Fusion batch commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "map-region",
        help="map thaw slumps over a region on Dask (local cluster or a scheduler)",
        description=(
            "Map thaw slumps over a whole region: the area is cut into units on one grid, each unit is a Dask "
            "task (align and fuse with a halo, detect, write its probability and mask), then the slumps are "
            "polygonised across units. Writes probability.vrt, mask.vrt, slumps.gpkg and units.csv into the "
            "output folder; a rerun into the same folder skips finished units."
        ),
    )
    src = "a raster, a VRT, a folder of rasters or several rasters (mosaicked into a VRT)"
    p.add_argument("--optical", nargs="+", required=True, help=f"optical image: {src}")
    p.add_argument("--thermal", nargs="+", help=f"LST or thermal band: {src}")
    p.add_argument("--dem", nargs="+", help=f"elevation in metres: {src}")
    p.add_argument("--temperature-series", nargs="+", help=f"temperature series for FTI: {src}")
    p.add_argument("--fti", nargs="+", help=f"freeze-thaw index raster: {src}")
    p.add_argument("--model", required=True, help="model package (.safetensors)")
    p.add_argument("--output-folder", required=True, help="where the mosaics, polygons and unit files go")
    p.add_argument(
        "--optical-bands", help="1-based optical bands BLUE,GREEN,RED,NIR,SWIR1,SWIR2 (default: from the file)"
    )
    p.add_argument(
        "--sensor",
        default="auto",
        help="optical sensor: auto (default: from band names and metadata), sentinel2, landsat8, landsat5, other",
    )
    p.add_argument("--crs", help="target CRS, e.g. EPSG:32646 (default: the optical's)")
    p.add_argument("--pixel-size", type=float, help="target pixel size in CRS units (default: the optical's)")
    p.add_argument(
        "--terrain-radius", type=float, default=100.0, help="TPI/TRI neighbourhood radius in metres (default 100)"
    )
    p.add_argument("--aoi", help="polygon layer limiting the region (file, optionally 'file|layername=name')")
    p.add_argument("--unit-size", type=int, default=4096, help="unit side in pixels (default 4096)")
    p.add_argument("--workers", type=int, default=0, help="local worker processes (0: one per GPU, else per core)")
    p.add_argument("--scheduler", default="", help="Dask scheduler address, e.g. tcp://host:8786 (empty: local)")
    p.add_argument(
        "--retries", type=int, default=2, help="reruns of a unit whose worker died or which failed (default 2)"
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="detection device (default auto)")
    p.add_argument("--threshold", type=float, help="probability threshold (default: the model's)")
    p.add_argument("--min-area", type=float, default=1000.0, help="minimum slump area in m² (default 1000)")
    p.add_argument("--cog", action="store_true", help="also write COGs with overviews of probability and mask")
    p.add_argument("--geoparquet", action="store_true", help="also write the polygons as GeoParquet")
    return parser


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def map_region_command(args: argparse.Namespace) -> int:
    """Run map-region with parsed arguments; prints the result as JSON on stdout."""
    from ..core.bands import OPTICAL_KEYS
    from ..core.stack import FusionInputs, GridOptions, OpticalBands
    from .map_slumps import MapInputs, MapOptions
    from .region import RegionOptions, input_raster, map_region, result_summary

    folder = os.path.abspath(args.output_folder)
    sources = os.path.join(folder, "inputs")

    def one(paths: Sequence[str] | None, label: str) -> str | None:
        return input_raster(paths, os.path.join(sources, f"{label}.vrt"), label) if paths else None

    bands = OpticalBands(sensor=args.sensor)
    if args.optical_bands:
        try:
            numbers = [int(b) for b in args.optical_bands.split(",")]
        except ValueError as exc:
            raise RtsFusionError(
                f"--optical-bands must be numbers separated by commas, not {args.optical_bands!r}"
            ) from exc
        bands = OpticalBands(**dict(zip(OPTICAL_KEYS, numbers)), sensor=args.sensor)
    fusion = FusionInputs(
        one(args.optical, "optical"),
        one(args.thermal, "thermal"),
        one(args.dem, "dem"),
        bands,
        fti=one(args.fti, "fti"),
        temperature_series=one(args.temperature_series, "temperature_series"),
    )
    inputs = MapInputs(fusion, GridOptions(args.crs, args.pixel_size), args.terrain_radius)
    options = MapOptions(device=args.device, threshold=args.threshold, min_area_m2=args.min_area)
    region = RegionOptions(
        unit_size=args.unit_size,
        workers=args.workers,
        scheduler=args.scheduler,
        retries=args.retries,
        aoi=args.aoi,
        cog=args.cog,
        geoparquet=args.geoparquet,
    )
    last = [-1]

    def progress(p: float) -> None:
        if int(p) != last[0]:
            last[0] = int(p)
            _log(f"{p:.0f} %")

    result = map_region(inputs, args.model, folder, options, region, progress=progress, log=_log)
    sys.stdout.write(json.dumps(result_summary(result), indent=1) + "\n")
    return 0 if not result.failed else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m rts_fusion``: 0 done, 1 some units failed, 2 input to fix, 3 interrupted."""
    args = _parser().parse_args(argv)
    try:
        return map_region_command(args)
    except RtsFusionError as exc:
        _log(f"Error: {exc}")
        return USER_ERROR
    except (OperationCanceled, KeyboardInterrupt):
        _log("Interrupted: finished units are kept; run the same command again to resume.")
        return CANCELED
