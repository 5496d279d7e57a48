"""The bad-input catalogue (issue 10 §5): the mistakes users make, each run through processing.run.

Every case asserts its class of outcome: a clear error whose message names the problem (no traceback, no Python
exception name), nothing left at the output paths and no temporary file beside them, every input's bytes
unchanged, a file that was already at an output path untouched, or a sensible result where one is sensible.
Cases run in two runner processes (tests/catalogue_runner.py: one QGIS start-up each, every case isolated from the
ones before it, a timeout per case, a fresh process after a case that crashes or hangs). Run alone with
`pytest -m catalogue`. The README's "Reliability" section lists the cases by class.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from catalogue_runner import RESULT_MARK

pytestmark = pytest.mark.catalogue

RUNNER = Path(__file__).with_name("catalogue_runner.py")
TIMEOUT_S = 300
WORKERS = 2
# A message a user should never read: a traceback or a Python/GDAL exception class name.
TECHNICAL = re.compile(r"Traceback|\b[A-Z]\w*(Error|Exception)\b|CPLE_|sqlite3\.")


@dataclass(frozen=True)
class Case:
    """One catalogue case.

    Parameter values starting with "$" name a catalogue input (tests/catalogue_data.py); values starting with "@"
    are paths inside the case's own output folder. `existing` outputs hold a file before the run, which an error
    must leave byte for byte as it was.
    """

    id: str
    group: str
    alg: str
    params: dict
    expect: str = "error"  # "error" or "ok"
    match: str = ""  # regex the error message must match (case-insensitive)
    existing: tuple[str, ...] = ()
    check: Callable[[dict, dict], None] | None = None  # (results, resolved params) for "ok" cases
    waiting: str = ""  # the fix this case waits for (xfail strict until it lands)
    keep: tuple[str, ...] = field(default=())  # output params that may exist after an error (never written)


def _count(n: int) -> Callable[[dict, dict], None]:
    def check(results: dict, params: dict) -> None:
        assert results["COUNT"] == n

    return check


def _layer_features(path: str) -> int:
    from osgeo import ogr

    ds = ogr.Open(path)
    return ds.GetLayer(0).GetFeatureCount()


def _empty_layer(results: dict, params: dict) -> None:
    assert results["COUNT"] == 0 and _layer_features(params["OUTPUT"]) == 0


def _same_size_as_stack(results: dict, params: dict) -> None:
    import rasterio

    with rasterio.open(params["STACK"]) as s, rasterio.open(params["PROBABILITY"]) as p:
        assert (p.width, p.height) == (s.width, s.height) and p.transform == s.transform


def _all_stable(results: dict, params: dict) -> None:
    assert results["N_STABLE"] > 0 and results["N_NEW"] == 0 and results["N_VANISHED"] == 0


def _shapefile(results: dict, params: dict) -> None:
    stem = os.path.splitext(params["OUTPUT"])[0]
    assert all(os.path.exists(stem + ext) for ext in (".shp", ".shx", ".dbf", ".prj"))
    assert results["COUNT"] == 1


FUSE = {"OPTICAL": "$optical", "THERMAL": "$thermal", "DEM": "$dem", "TEMPERATURE_SERIES": "$series"}
DETECT = {"STACK": "$stack", "MODEL": "$model", "DEVICE": 1, "PROBABILITY": "@prob.tif", "MASK": "@mask.tif"}
POLY = {"INPUT": "$prob_blob", "MIN_AREA": 0, "FILL_HOLES": 0, "OUTPUT": "@slumps.gpkg"}
CHANGE = {"BEFORE": "$slumps", "AFTER": "$slumps_copy", "OUTPUT": "@changes.gpkg"}
EVAL = {"PREDICTION": "$slumps", "TRUTH": "$slumps_copy", "REFERENCE": "$stack", "OUTPUT": "@metrics.gpkg"}
STATS = {"SLUMPS": "$slumps", "DEM": "$dem", "OUTPUT": "@stats.gpkg"}
TRENDS = {"SLUMPS": "$slumps", "RASTERS": ["$stack"] * 3, "YEARS": "2020,2021,2022", "OUTPUT": "@trends.gpkg"}
MAP = {**FUSE, "MODEL": "$model", "DEVICE": 1, "STACK": "@stack.tif", "PROBABILITY": "@p.tif", "MASK": "@m.tif"}
MAP["POLYGONS"] = "@polygons.gpkg"
TRAIN = {"STACK": "$stack", "INVENTORY": "$slumps", "ENCODER": 6, "TILE_SIZE": 32, "EPOCHS": 1, "BATCH_SIZE": 4}
TRAIN.update({"CHIPS_PER_EPOCH": 8, "DECODER_DIM": 16, "DEVICE": 1, "SPLIT": 1, "OUTPUT": "@model.safetensors"})
IMPORTANCE = {"MODEL": "$model", "STACK": "$stack", "TRUTH": "$slumps", "METHOD": 1, "REPEATS": 1, "DEVICE": 1}
IMPORTANCE["OUTPUT"] = "@importance.gpkg"
TRANSFER = {"STACK": "$stack", "INVENTORY": "$slumps", "REGIONS": "$slumps", "EPOCHS": 1, "OUTPUT": "@t.gpkg"}

OVERWRITES = "would be written to .*which is the input .*destroy the input"

CASES = [
    # --- 1. Data safety: an output that resolves to an input is refused before any work -----------------------
    Case(
        "fuse-output-is-optical", "data safety", "rtsfusion:alignfuse", {**FUSE, "OUTPUT": "$optical"}, match=OVERWRITES
    ),
    Case(
        "fuse-output-hardlink-optical",
        "data safety",
        "rtsfusion:alignfuse",
        {**FUSE, "OUTPUT": "$optical_hardlink"},
        match=OVERWRITES,
    ),
    Case("fuse-output-is-dem", "data safety", "rtsfusion:alignfuse", {**FUSE, "OUTPUT": "$dem"}, match=OVERWRITES),
    Case(
        "detect-probability-is-stack",
        "data safety",
        "rtsfusion:detect",
        {**DETECT, "PROBABILITY": "$stack"},
        match=OVERWRITES,
    ),
    Case(
        "detect-mask-symlink-stack",
        "data safety",
        "rtsfusion:detect",
        {**DETECT, "MASK": "$stack_link"},
        match=OVERWRITES,
    ),
    Case(
        "detect-probability-equals-mask",
        "data safety",
        "rtsfusion:detect",
        {**DETECT, "MASK": "@prob.tif"},
        match=r"both be written to",
    ),
    Case(
        "polygonize-output-is-stack",
        "data safety",
        "rtsfusion:polygonize",
        {**POLY, "STACK": "$stack", "OUTPUT": "$stack"},
        match=OVERWRITES,
    ),
    Case(
        "change-output-is-before",
        "data safety",
        "rtsfusion:changedetect",
        {**CHANGE, "OUTPUT": "$slumps"},
        match=r"Slump changes.*Earlier inventory",
    ),
    Case(
        "change-output-symlink-before",
        "data safety",
        "rtsfusion:changedetect",
        {**CHANGE, "OUTPUT": "$slumps_link"},
        match=OVERWRITES,
    ),
    Case(
        "change-output-gpkg-of-layer",
        "data safety",
        "rtsfusion:changedetect",
        {**CHANGE, "BEFORE": "$multi_slumps", "OUTPUT": "$multi"},
        match=OVERWRITES,
    ),
    Case(
        "evaluate-table-is-truth",
        "data safety",
        "rtsfusion:evaluate",
        {**EVAL, "OUTPUT": "$slumps_copy"},
        match=OVERWRITES,
    ),
    Case(
        "evaluate-matches-is-prediction",
        "data safety",
        "rtsfusion:evaluate",
        {**EVAL, "MATCHES": "$slumps"},
        match=OVERWRITES,
    ),
    Case("evaluate-csv-is-reference", "data safety", "rtsfusion:evaluate", {**EVAL, "CSV": "$stack"}, match=OVERWRITES),
    Case(
        "stats-table-is-inventory",
        "data safety",
        "rtsfusion:inventorystats",
        {**STATS, "OUTPUT": "$slumps"},
        match=OVERWRITES,
    ),
    Case("stats-report-is-dem", "data safety", "rtsfusion:inventorystats", {**STATS, "HTML": "$dem"}, match=OVERWRITES),
    Case(
        "trends-table-is-slumps",
        "data safety",
        "rtsfusion:temporaltrends",
        {**TRENDS, "OUTPUT": "$slumps"},
        match=OVERWRITES,
    ),
    Case("map-stack-is-optical", "data safety", "rtsfusion:mapslumps", {**MAP, "STACK": "$optical"}, match=OVERWRITES),
    Case(
        "map-polygons-is-model", "data safety", "rtsfusion:mapslumps", {**MAP, "POLYGONS": "$model"}, match=OVERWRITES
    ),
    Case("train-package-is-stack", "data safety", "rtsfusion:train", {**TRAIN, "OUTPUT": "$stack"}, match=OVERWRITES),
    Case(
        "train-report-is-inventory", "data safety", "rtsfusion:train", {**TRAIN, "REPORT": "$slumps"}, match=OVERWRITES
    ),
    Case(
        "importance-csv-is-model",
        "data safety",
        "rtsfusion:bandimportance",
        {**IMPORTANCE, "CSV": "$model"},
        match=OVERWRITES,
    ),
    # --- 2. A failed run leaves a file already at the output untouched, and no partial or temporary file --------
    Case(
        "polygonize-fails-keeps-old-output",
        "failed run keeps old output",
        "rtsfusion:polygonize",
        {**POLY, "INPUT": "$corrupt_tif"},
        match=r"corrupt|not a|cannot|invalid",
        existing=("OUTPUT",),
    ),
    Case(
        "detect-fails-keeps-old-outputs",
        "failed run keeps old output",
        "rtsfusion:detect",
        {**DETECT, "MODEL": "$corrupt_model"},
        match=r"model",
        existing=("PROBABILITY", "MASK"),
    ),
    Case(
        "detect-missing-bands-keeps-old-output",
        "failed run keeps old output",
        "rtsfusion:detect",
        {**DETECT, "STACK": "$prob_blob"},
        match=r"band",
        existing=("PROBABILITY",),
    ),
    Case(
        "fuse-no-overlap-keeps-old-output",
        "failed run keeps old output",
        "rtsfusion:alignfuse",
        {**FUSE, "DEM": "$dem_far", "OUTPUT": "@stack.tif"},
        match=r"overlap|outside|cover",
        existing=("OUTPUT",),
    ),
    Case(
        "change-fails-keeps-old-output",
        "failed run keeps old output",
        "rtsfusion:changedetect",
        {**CHANGE, "AFTER": "$lines"},
        match=r"polygons are needed",
        existing=("OUTPUT",),
    ),
    Case(
        "map-fails-keeps-old-outputs",
        "failed run keeps old output",
        "rtsfusion:mapslumps",
        {**MAP, "DEM": "$dem_far"},
        match=r"overlap|outside|cover",
        existing=("STACK", "PROBABILITY", "POLYGONS"),
    ),
    Case(
        "train-fails-keeps-old-package",
        "failed run keeps old output",
        "rtsfusion:train",
        {**TRAIN, "INVENTORY": "$points"},
        match=r"polygons are needed",
        existing=("OUTPUT",),
    ),
    # --- 3. Output folders: created when missing, a file in the way is named -----------------------------------
    Case(
        "polygonize-creates-folder",
        "output folders",
        "rtsfusion:polygonize",
        {**POLY, "OUTPUT": "@new/sub/slumps.gpkg"},
        expect="ok",
        check=_count(1),
    ),
    Case(
        "fuse-creates-folder",
        "output folders",
        "rtsfusion:alignfuse",
        {**FUSE, "OUTPUT": "@new/dir/stack.tif"},
        expect="ok",
    ),
    Case(
        "stats-table-creates-folder",
        "output folders",
        "rtsfusion:inventorystats",
        {**STATS, "OUTPUT": "@new/stats.gpkg", "HTML": "@new/report/stats.html"},
        expect="ok",
    ),
    Case(
        "detect-folder-is-a-file",
        "output folders",
        "rtsfusion:detect",
        {**DETECT, "PROBABILITY": "$a_file/p.tif"},
        match=r"Slump probability.*is a file, not a folder",
    ),
    Case(
        "change-folder-is-a-file",
        "output folders",
        "rtsfusion:changedetect",
        {**CHANGE, "OUTPUT": "$a_file/sub/c.gpkg"},
        match=r"is a file, not a folder",
    ),
    Case(
        "polygonize-fails-no-folder-left",
        "output folders",
        "rtsfusion:polygonize",
        {**POLY, "INPUT": "$corrupt_tif", "OUTPUT": "@never/made/slumps.gpkg"},
        match=r".",
    ),
    Case(
        "train-output-is-a-folder",
        "output folders",
        "rtsfusion:train",
        {**TRAIN, "OUTPUT": "@"},
        match=r"existing folder",
        keep=("OUTPUT",),
    ),
    # --- 4. The layer chosen inside a GeoPackage is the one read ---------------------------------------------------
    Case(
        "change-reads-chosen-layer",
        "GeoPackage layer choice",
        "rtsfusion:changedetect",
        {**CHANGE, "BEFORE": "$multi_slumps"},
        expect="ok",
        check=_all_stable,
    ),
    Case(
        "stats-reads-chosen-layer",
        "GeoPackage layer choice",
        "rtsfusion:inventorystats",
        {**STATS, "SLUMPS": "$multi_slumps"},
        expect="ok",
    ),
    Case(
        "evaluate-reads-chosen-layer",
        "GeoPackage layer choice",
        "rtsfusion:evaluate",
        {**EVAL, "TRUTH": "$multi_slumps"},
        expect="ok",
    ),
    Case(
        "trends-reads-chosen-layer",
        "GeoPackage layer choice",
        "rtsfusion:temporaltrends",
        {**TRENDS, "SLUMPS": "$multi_slumps"},
        expect="ok",
    ),
    Case(
        "train-reads-chosen-layer",
        "GeoPackage layer choice",
        "rtsfusion:train",
        {**TRAIN, "INVENTORY": "$multi_slumps"},
        expect="ok",
    ),
    # --- 5. Points or lines where slump polygons are needed ---------------------------------------------------------
    Case(
        "change-before-points",
        "polygons needed",
        "rtsfusion:changedetect",
        {**CHANGE, "BEFORE": "$points"},
        match=r"earlier inventory.*polygons are needed",
    ),
    Case(
        "stats-inventory-lines",
        "polygons needed",
        "rtsfusion:inventorystats",
        {**STATS, "SLUMPS": "$lines"},
        match=r"polygons are needed",
    ),
    Case(
        "stats-aoi-points",
        "polygons needed",
        "rtsfusion:inventorystats",
        {**STATS, "AOI": "$points"},
        match=r"polygons are needed",
    ),
    Case(
        "evaluate-truth-points",
        "polygons needed",
        "rtsfusion:evaluate",
        {**EVAL, "TRUTH": "$points"},
        match=r"ground truth.*polygons are needed",
    ),
    Case(
        "evaluate-prediction-lines",
        "polygons needed",
        "rtsfusion:evaluate",
        {**EVAL, "PREDICTION": "$lines"},
        match=r"polygons are needed",
    ),
    Case(
        "trends-slumps-points",
        "polygons needed",
        "rtsfusion:temporaltrends",
        {**TRENDS, "SLUMPS": "$points"},
        match=r"polygons are needed",
    ),
    Case(
        "train-inventory-lines",
        "polygons needed",
        "rtsfusion:train",
        {**TRAIN, "INVENTORY": "$lines"},
        match=r"inventory.*polygons are needed",
    ),
    Case(
        "importance-truth-points",
        "polygons needed",
        "rtsfusion:bandimportance",
        {**IMPORTANCE, "TRUTH": "$points"},
        match=r"polygons are needed",
    ),
    Case(
        "transfer-regions-lines",
        "polygons needed",
        "rtsfusion:spatialtransfer",
        {**TRANSFER, "REGIONS": "$lines"},
        match=r"regions.*polygons are needed",
    ),
    Case(
        "multi-gpkg-first-layer-points",
        "polygons needed",
        "rtsfusion:changedetect",
        {**CHANGE, "AFTER": "$multi"},
        match=r"polygons are needed",
    ),
    # --- 6. Missing, corrupt or ungeoreferenced inputs --------------------------------------------------------------
    Case(
        "fuse-optical-missing",
        "missing or corrupt input",
        "rtsfusion:alignfuse",
        {**FUSE, "OPTICAL": "$missing", "OUTPUT": "@s.tif"},
        match=r"OPTICAL|optical",
    ),
    Case(
        "fuse-optical-corrupt",
        "missing or corrupt input",
        "rtsfusion:alignfuse",
        {**FUSE, "OPTICAL": "$corrupt_tif", "OUTPUT": "@s.tif"},
        match=r"OPTICAL|optical",
    ),
    Case(
        "fuse-dem-ungeoreferenced",
        "missing or corrupt input",
        "rtsfusion:alignfuse",
        {**FUSE, "DEM": "$ungeoref", "OUTPUT": "@s.tif"},
        match=r"georeferenc|coordinate reference|CRS",
    ),
    Case(
        "detect-model-corrupt",
        "missing or corrupt input",
        "rtsfusion:detect",
        {**DETECT, "MODEL": "$corrupt_model"},
        match=r"model",
    ),
    Case(
        "detect-model-missing",
        "missing or corrupt input",
        "rtsfusion:detect",
        {**DETECT, "MODEL": "$missing_gpkg"},
        match=r"model|MODEL|file",
    ),
    Case(
        "detect-stack-is-not-a-stack",
        "missing or corrupt input",
        "rtsfusion:detect",
        {**DETECT, "STACK": "$optical"},
        match=r"band",
    ),
    Case(
        "polygonize-input-corrupt",
        "missing or corrupt input",
        "rtsfusion:polygonize",
        {**POLY, "INPUT": "$corrupt_tif"},
        match=r"INPUT|detection|raster",
    ),
    Case(
        "change-before-corrupt",
        "missing or corrupt input",
        "rtsfusion:changedetect",
        {**CHANGE, "BEFORE": "$corrupt_gpkg"},
        match=r"BEFORE|earlier inventory",
    ),
    Case(
        "evaluate-prediction-missing",
        "missing or corrupt input",
        "rtsfusion:evaluate",
        {**EVAL, "PREDICTION": "$missing_gpkg"},
        match=r"PREDICTION|Detections",
    ),
    Case(
        "map-model-corrupt",
        "missing or corrupt input",
        "rtsfusion:mapslumps",
        {**MAP, "MODEL": "$corrupt_model"},
        match=r"model",
    ),
    Case(
        "train-nothing-to-learn-from",
        "missing or corrupt input",
        "rtsfusion:train",
        {"OUTPUT": "@m.safetensors", "EPOCHS": 1},
        match=r"fused stack and a slump inventory",
    ),
    Case(
        "train-manifest-bad-columns",
        "missing or corrupt input",
        "rtsfusion:train",
        {**TRAIN, "STACK": None, "INVENTORY": None, "MANIFEST": "$manifest_bad"},
        match=r"manifest|column",
    ),
    Case(
        "trends-years-not-numbers",
        "missing or corrupt input",
        "rtsfusion:temporaltrends",
        {**TRENDS, "YEARS": "last,this"},
        match=r"Years",
    ),
    # --- 7. Impossible or absurd requests -----------------------------------------------------------------------------
    Case(
        "fuse-dem-far-away",
        "impossible request",
        "rtsfusion:alignfuse",
        {**FUSE, "DEM": "$dem_far", "OUTPUT": "@s.tif"},
        match=r"overlap|outside|cover",
    ),
    Case(
        "fuse-dem-off-the-globe",
        "impossible request",
        "rtsfusion:alignfuse",
        {**FUSE, "DEM": "$dem_offglobe", "OUTPUT": "@s.tif"},
        match=r"DEM",
    ),
    Case(
        "detect-tile-not-multiple-of-32",
        "impossible request",
        "rtsfusion:detect",
        {**DETECT, "TILE_SIZE": 48},
        match=r"multiple of 32",
    ),
    Case(
        "detect-overlap-too-large",
        "impossible request",
        "rtsfusion:detect",
        {**DETECT, "TILE_SIZE": 32, "OVERLAP": 40},
        match=r"overlap",
    ),
    Case(
        "polygonize-threshold-out-of-range",
        "impossible request",
        "rtsfusion:polygonize",
        {**POLY, "THRESHOLD": 2},
        match=r"THRESHOLD|threshold",
    ),
    Case(
        "fuse-geographic-crs-metre-pixels",
        "impossible request",
        "rtsfusion:alignfuse",
        {**FUSE, "TARGET_CRS": "EPSG:4326", "PIXEL_SIZE": 10, "OUTPUT": "@s.tif"},
        match=r"degree|geographic",
    ),
    # --- 8. Errors name the culprit ----------------------------------------------------------------------------------
    Case(
        "fuse-dem-all-nodata",
        "errors name the culprit",
        "rtsfusion:alignfuse",
        {**FUSE, "DEM": "$dem_nodata", "OUTPUT": "@s.tif"},
        match=r"DEM",
    ),
    Case(
        "fuse-preset-missing-inputs-listed",
        "errors name the culprit",
        "rtsfusion:alignfuse",
        {"OPTICAL": "$optical", "OUTPUT": "@s.tif"},
        match=r"LST.*thermal.*DEM|DEM.*LST.*thermal",
    ),
    Case(
        "polygonize-three-bands",
        "errors name the culprit",
        "rtsfusion:polygonize",
        {**POLY, "INPUT": "$rgb3"},
        match=r"band",
    ),
    Case(
        "polygonize-values-not-probability",
        "errors name the culprit",
        "rtsfusion:polygonize",
        {**POLY, "INPUT": "$percent"},
        match=r"probabilit|0.1|range",
    ),
    Case(
        "evaluate-truth-empty",
        "errors name the culprit",
        "rtsfusion:evaluate",
        {**EVAL, "TRUTH": "$empty"},
        match=r"empty|no polygon",
    ),
    Case(
        "evaluate-truth-far-away",
        "errors name the culprit",
        "rtsfusion:evaluate",
        {**EVAL, "TRUTH": "$far"},
        match=r"overlap",
    ),
    Case(
        "change-inventories-far-apart",
        "errors name the culprit",
        "rtsfusion:changedetect",
        {**CHANGE, "AFTER": "$far"},
        match=r"overlap",
    ),
    # --- 9. Sensible results where a result is sensible ----------------------------------------------------------
    Case(
        "polygonize-all-zero-is-empty-layer",
        "sensible result",
        "rtsfusion:polygonize",
        {**POLY, "INPUT": "$prob_zero"},
        expect="ok",
        check=_empty_layer,
    ),
    Case("polygonize-one-blob", "sensible result", "rtsfusion:polygonize", POLY, expect="ok", check=_count(1)),
    Case(
        "polygonize-to-shapefile",
        "sensible result",
        "rtsfusion:polygonize",
        {**POLY, "OUTPUT": "@slumps.shp"},
        expect="ok",
        check=_shapefile,
    ),
    Case(
        "polygonize-replaces-old-output",
        "sensible result",
        "rtsfusion:polygonize",
        POLY,
        expect="ok",
        existing=("OUTPUT",),
        check=_count(1),
    ),
    Case(
        "detect-outputs-stack-size",
        "sensible result",
        "rtsfusion:detect",
        DETECT,
        expect="ok",
        check=_same_size_as_stack,
    ),
    Case(
        "detect-stack-smaller-than-tile",
        "sensible result",
        "rtsfusion:detect",
        {**DETECT, "TILE_SIZE": 128},
        expect="ok",
        check=_same_size_as_stack,
    ),
    Case(
        "change-same-inventory-all-stable",
        "sensible result",
        "rtsfusion:changedetect",
        CHANGE,
        expect="ok",
        check=_all_stable,
    ),
]


# ----- running -----------------------------------------------------------------------------------------------------
def _resolve(value, data: dict[str, str], out: Path):
    if isinstance(value, list):
        return [_resolve(v, data, out) for v in value]
    if isinstance(value, str) and value.startswith("$"):
        name, _, rest = value[1:].partition("/")
        return data[name] + (f"/{rest}" if rest else "")
    if isinstance(value, str) and value.startswith("@"):
        return str(out / value[1:])
    return value


def _paths(value) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v.split("|")[0] for v in values if isinstance(v, str) and os.path.isfile(v.split("|")[0])]


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Run:
    """What a case saw: its resolved parameters, the runner's result, and hashes before and after."""

    params: dict
    result: dict
    inputs_before: dict[str, str]
    inputs_after: dict[str, str]
    existing_before: dict[str, str]
    out: Path


class Runner:
    """One catalogue_runner process (one QGIS start-up) that runs the cases sent to it, one at a time.

    A case that kills the process ends as "crash" (with the end of its stderr), one that gives no answer within
    TIMEOUT_S as "timeout" (the process is killed); the next case starts a fresh process.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue = queue.Queue()
        self.stderr_path = folder / "runner_stderr.txt"

    def _start(self) -> None:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        self.stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in _stop
        self.proc = subprocess.Popen(
            [sys.executable, str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            cwd=str(self.folder),
        )
        self.lines = queue.Queue()

        def read(stream, lines) -> None:
            for line in stream:
                lines.put(line)
            lines.put(None)  # end of output: the process has gone

        threading.Thread(target=read, args=(self.proc.stdout, self.lines), daemon=True).start()

    def _stop(self) -> int | None:
        code = None
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                code = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
            self.stderr.close()
        self.proc = None
        return code

    def run(self, spec: dict) -> dict:
        """Send one case; its result (with the input digests the runner took around it)."""
        if self.proc is None or self.proc.poll() is not None:
            self._stop()
            self._start()
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT_S)
            except queue.Empty:
                self.proc.kill()
                self._stop()
                return {"status": "timeout", "message": f"no answer within {TIMEOUT_S} s"}
            if line is None:
                code = self._stop()
                tail = self.stderr_path.read_text(errors="replace")[-2000:]
                return {"status": "crash", "message": f"runner died ({code}): {tail}"}
            if line.startswith(RESULT_MARK):
                return json.loads(line[len(RESULT_MARK) :])

    def close(self) -> None:
        self._stop()


def _run(case: Case, data: dict[str, str], root: Path, runner: Runner) -> Run:
    out = root / case.id
    out.mkdir(parents=True, exist_ok=True)
    params = {k: _resolve(v, data, out) for k, v in case.params.items() if v is not None}
    existing = {}
    for key in case.existing:
        path = params[key]
        Path(path).write_bytes(f"previous output of {case.id}: {key}\n".encode())
        existing[path] = _digest(path)
    inputs = sorted({p for k, v in params.items() if k not in case.existing for p in _paths(v)})
    before = {p: _digest(p) for p in inputs}
    result = runner.run({"alg": case.alg, "params": params, "cwd": str(out), "inputs": inputs})
    after = {p: (_digest(p) if os.path.exists(p) else "deleted") for p in inputs}
    # The runner's digests, taken just around the case, say whether this case (not the other runner's) changed one.
    return Run(params, result, result.get("inputs_before", before), result.get("inputs_after", after), existing, out)


@pytest.fixture(scope="session")
def catalogue_data(tmp_path_factory) -> dict[str, str]:
    """The catalogue's inputs (a 64 px scene, its stack, a tiny model, the bad files), written once."""
    from catalogue_data import build_catalogue_data

    return build_catalogue_data(str(tmp_path_factory.mktemp("catalogue_data")))


@pytest.fixture(scope="session")
def catalogue_runs(request, catalogue_data, tmp_path_factory) -> dict[str, Run]:
    """Run every selected case: WORKERS runner processes, each taking the next case when it is free."""
    selected = {
        item.callspec.params["case"].id
        for item in request.session.items
        if hasattr(item, "callspec") and "case" in item.callspec.params
    }
    root = tmp_path_factory.mktemp("catalogue_runs")
    todo: queue.Queue = queue.Queue()
    for case in CASES:
        if case.id in selected:
            todo.put(case)
    runs: dict[str, Run] = {}

    def work(number: int) -> None:
        folder = root.parent / f"{root.name}_runner{number}"  # beside the cases' folders, not in them
        folder.mkdir(exist_ok=True)
        runner = Runner(folder)
        try:
            while True:
                try:
                    case = todo.get_nowait()
                except queue.Empty:
                    return
                runs[case.id] = _run(case, catalogue_data, root, runner)
        finally:
            runner.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return runs


def _params(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=case.waiting)] if case.waiting else []
    return pytest.param(case, id=case.id, marks=marks)


def test_catalogue_has_enough_cases():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
    assert len({c.alg for c in CASES}) >= 10


@pytest.mark.parametrize("case", [_params(c) for c in CASES])
def test_case(case: Case, catalogue_runs):
    run = catalogue_runs[case.id]
    result = run.result
    text = "\n".join([result.get("message", ""), *result.get("errors", [])])
    assert result["status"] in ("ok", "error"), f"{case.id}: {result['status']}: {text}"
    # Inputs are never touched, whatever happened.
    assert run.inputs_after == run.inputs_before, f"{case.id} changed an input"
    # No temporary file beside any output.
    folders = {os.path.dirname(v) for k, v in run.params.items() if isinstance(v, str) and k.isupper()}
    leftovers = [n for f in folders if os.path.isdir(f) for n in os.listdir(f) if ".part" in n]
    assert not leftovers, f"{case.id} left temporary files: {leftovers}"
    outputs = {
        k: v for k, v in run.params.items() if isinstance(v, str) and v.startswith(str(run.out)) and k not in case.keep
    }
    if case.expect == "error":
        assert result["status"] == "error", f"{case.id} should have been refused; it gave {result}"
        assert re.search(case.match, text, re.IGNORECASE | re.DOTALL), f"{case.id}: unexpected message: {text}"
        assert not TECHNICAL.search(text), f"{case.id}: technical message: {text}"
        for path in outputs.values():
            if path in run.existing_before:
                assert _digest(path) == run.existing_before[path], f"{case.id} changed the earlier {path}"
            else:
                assert not os.path.exists(path), f"{case.id} left {path} behind"
        created = [p for p in run.out.rglob("*") if p.is_dir()]
        assert not created, f"{case.id} left folders behind: {created}"
    else:
        assert result["status"] == "ok", f"{case.id} failed: {text}"
        for key, path in outputs.items():
            assert os.path.exists(path), f"{case.id} did not write {key}"
            if key in case.existing:
                assert _digest(path) != run.existing_before[path], f"{case.id} did not replace {path}"
        if case.check:
            case.check(result["results"], run.params)
