"""Peak memory of writing a fused stack at two raster sizes (ratio), each build in its own process.

The scenes are generated first (in other processes); each measured process only builds the extended stack
(22 bands) and reports its peak RSS and the RSS after imports, so the ratio shows how memory grows with the
raster: a window-by-window writer stays flat while the pixel count grows 16-fold.

    .venv/bin/python bench/bench_stack_memory.py [--sizes 1024 4096]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import save

CHILD = r"""
import json, resource, sys
sys.path.insert(0, {bench!r})
from _common import import_plugin
import_plugin()
from rts_fusion.core.features import EXTENDED
from rts_fusion.core.stack import FusionInputs, OpticalBands, build_fused_stack
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
folder = {folder!r}
inp = FusionInputs(folder + "/optical.tif", folder + "/thermal.tif", folder + "/dem.tif",
                   OpticalBands(1, 2, 3, 4, 5, 6, sensor="sentinel2"),
                   temperature_series=folder + "/temperature_series.tif")
info = build_fused_stack(inp, EXTENDED, folder + "/stack.tif")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"base_mb": base / 1024, "peak_mb": peak / 1024, "pixels": info.grid.width * info.grid.height,
                  "bands": len(info.band_names)}}))
"""

GEN = r"""
import sys
sys.path.insert(0, {bench!r})
from _common import import_plugin
import_plugin()
from rts_fusion.core.synthetic import generate_sample_scene
generate_sample_scene({folder!r}, size={size}, seed=3)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs=2, default=[1024, 4096])
    args = parser.parse_args()
    bench = str(Path(__file__).resolve().parent)
    tmp = Path(tempfile.mkdtemp(prefix="bench_mem_"))
    rows = []
    for size in args.sizes:
        folder = str(tmp / f"s{size}")
        subprocess.run([sys.executable, "-c", GEN.format(bench=bench, folder=folder, size=size)], check=True)
        out = subprocess.run(
            [sys.executable, "-c", CHILD.format(bench=bench, folder=folder)], check=True, capture_output=True, text=True
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["size"] = size
        rows.append(row)
        print(
            f"{size} x {size}: peak RSS {row['peak_mb']:.0f} MB (after imports {row['base_mb']:.0f} MB), "
            f"{row['bands']} bands"
        )
    small, big = rows
    ratio = big["peak_mb"] / small["peak_mb"]
    growth = (big["peak_mb"] - big["base_mb"]) / max(small["peak_mb"] - small["base_mb"], 1e-9)
    px = big["pixels"] / small["pixels"]
    full_array_mb = big["pixels"] * big["bands"] * 4 / 2**20
    print(f"pixels x{px:.0f}; peak RSS ratio {ratio:.2f}; working-set ratio (peak - after imports) {growth:.2f}")
    print(f"a whole-raster float32 array of the large stack would need {full_array_mb:.0f} MB")
    path = save(
        "stack_memory",
        {
            "rows": rows,
            "pixel_ratio": px,
            "peak_ratio": round(ratio, 3),
            "working_set_ratio": round(growth, 3),
            "full_array_mb": round(full_array_mb),
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
