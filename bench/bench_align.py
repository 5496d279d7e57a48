"""Alignment speed: RTS Fusion's stack writer against the equivalent gdalwarp commands, side by side.

Both put the same three sources (6 optical bands bilinear, thermal bilinear, DEM cubic) onto the same target
grid, as tiled deflate-compressed float32 GeoTIFFs. RTS Fusion writes one eight-band stack (six reflectance bands,
LST, DEM); gdalwarp writes three files. Runs alternate so machine noise hits both alike.

    .venv/bin/python bench/bench_align.py [--size 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from _common import import_plugin, median_time, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import_plugin()
    from rts_fusion.core.grid import build_target_grid, inspect_source
    from rts_fusion.core.stack import FusionInputs, OpticalBands, build_fused_stack
    from rts_fusion.core.synthetic import generate_sample_scene

    tmp = Path(tempfile.mkdtemp(prefix="bench_align_"))
    scene = generate_sample_scene(str(tmp / "scene"), size=args.size, seed=1)
    inputs = FusionInputs(scene.optical, scene.thermal, scene.dem, OpticalBands(1, 2, 3, 4, 5, 6, sensor="sentinel2"))
    features = ("BLUE", "GREEN", "RED", "NIR", "SWIR1", "SWIR2", "LST", "DEM")
    grid = build_target_grid(
        [inspect_source(p, k) for k, p in (("o", scene.optical), ("t", scene.thermal), ("d", scene.dem))]
    )
    xmin, ymin, xmax, ymax = grid.bounds
    common = ["-overwrite", "-q", "-ot", "Float32", "-dstnodata", "nan", "-t_srs", grid.crs.to_string()]
    common += ["-tr", str(grid.pixel_size[0]), str(grid.pixel_size[1]), "-te", *map(str, (xmin, ymin, xmax, ymax))]
    common += ["-co", "TILED=YES", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=3"]
    cmds = [
        [
            "gdalwarp",
            *common,
            "-r",
            "bilinear",
            scene.optical,
            str(tmp / "w_opt.tif"),
        ],
        ["gdalwarp", *common, "-r", "bilinear", scene.thermal, str(tmp / "w_th.tif")],
        ["gdalwarp", *common, "-r", "cubic", scene.dem, str(tmp / "w_dem.tif")],
    ]

    def ours() -> None:
        build_fused_stack(inputs, features, str(tmp / "stack.tif"))

    def gdal() -> None:
        for cmd in cmds:
            subprocess.run(cmd, check=True)

    ours()
    gdal()  # warm-up: page cache, imports
    t_ours, t_gdal = [], []
    for _ in range(args.repeats):
        t_ours.append(median_time(ours, 1))
        t_gdal.append(median_time(gdal, 1))
    t_o, t_g = sorted(t_ours)[len(t_ours) // 2], sorted(t_gdal)[len(t_gdal) // 2]
    mpx = grid.width * grid.height / 1e6
    print(f"grid {grid.width} x {grid.height} ({mpx:.1f} Mpx), median of {args.repeats} alternating runs")
    print(f"  rts_fusion stack (8 bands, one file): {t_o:.2f} s")
    print(f"  gdalwarp x3 (same grid and options):  {t_g:.2f} s")
    print(f"  ratio rts_fusion / gdalwarp: {t_o / t_g:.2f}")
    path = save(
        "align",
        {
            "size": args.size,
            "grid": [grid.width, grid.height],
            "repeats": args.repeats,
            "rts_fusion_s": round(t_o, 3),
            "gdalwarp_s": round(t_g, 3),
            "ratio": round(t_o / t_g, 3),
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
