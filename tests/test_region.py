"""Region mapping on Dask: units on one grid equal a single run; resume, a killed worker, an AOI, cancel."""

import os
import signal
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import rasterio
from osgeo import ogr, osr
from rts_fusion.core.errors import OperationCanceled
from rts_fusion.core.synthetic import sample_inputs
from rts_fusion.pipeline.map_slumps import MapInputs, MapOptions, map_slumps
from rts_fusion.pipeline.region import RegionOptions, map_region, read_status
from test_pipeline import outputs_in  # tests/ is on sys.path (prepend import mode)

pytestmark = pytest.mark.dask


@pytest.fixture(scope="module")
def inputs(training_scene) -> MapInputs:
    """The scene the session's tiny model was trained on (384 px)."""
    return MapInputs(sample_inputs(training_scene))


UNIT = 128  # the 384 px training scene in 3 × 3 units; its slumps cross unit borders
TOLERANCE = 1e-3  # max |Δp| allowed between a region run and a single run (float rounding: ~1e-4 seen)
OPTIONS = MapOptions(device="cpu", threshold=0.3, min_area_m2=500)


@pytest.fixture(scope="module")
def cluster():
    """A local Dask cluster of 2 worker processes, 1 thread each, shared by the tests of this module."""
    from rts_fusion.pipeline.region import local_cluster

    with local_cluster(2) as c:
        yield c


def test_workers_keep_glibcs_memory_defaults_and_one_thread(cluster):
    """Dask's MALLOC_TRIM_THRESHOLD_ slows numpy-heavy units 1.7×: our local workers start without it."""
    from distributed import Client

    with Client(cluster) as client:
        env = client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")))
    assert set(env.values()) == {(None, "1")}


def border_slumps(prob: np.ndarray, threshold: float) -> int:
    """Objects of the thresholded probability that cross a unit border (4-connected, as polygonised)."""
    from scipy import ndimage

    labels, _ = ndimage.label(prob >= threshold)
    crossing = set()
    for b in range(UNIT, max(prob.shape), UNIT):
        for a, c in ((labels[b - 1], labels[b]), (labels[:, b - 1], labels[:, b])):
            crossing |= set(a[(a == c) & (a > 0)].tolist())
    return len(crossing)


def clear_threshold(prob: np.ndarray) -> tuple[float, float, int]:
    """A threshold no pixel is near, with slumps across unit borders: (threshold, gap, border slumps).

    Float rounding (about 1e-4 here) can move a pixel across a threshold it nearly touches; with none near it, the
    masks and polygons of a region run and of a single run must be identical. Of the middles of the widest gaps
    between probabilities in a few ranges, the one with the widest gap among those cutting a slump is taken.
    """
    found = []
    for lo, hi in ((0.35, 0.45), (0.3, 0.4), (0.4, 0.5), (0.45, 0.55), (0.5, 0.65)):
        v = np.unique(prob[(prob >= lo) & (prob <= hi)])
        gaps = np.diff(v)
        i = int(gaps.argmax())
        t = float((v[i] + v[i + 1]) / 2)
        found.append((float(gaps[i]), t, border_slumps(prob, t)))
    gap, t, crossing = max(f for f in found if f[2] > 0)
    return t, gap, crossing


@pytest.fixture(scope="module")
def single(inputs, tiny_model, tmp_path_factory):
    """mapslumps over the whole scene at a threshold no pixel is near: (probability, areas, transform, options)."""
    folder = tmp_path_factory.mktemp("single")
    first = map_slumps(inputs, tiny_model, outputs_in(folder), OPTIONS)
    with rasterio.open(first.probability) as ds:
        threshold, gap, crossing = clear_threshold(ds.read(1))
    assert gap / 2 > 2e-4 and crossing > 0  # no pixel within 2e-4 of the threshold; slumps cut by unit borders
    options = replace(OPTIONS, threshold=threshold)
    result = map_slumps(inputs, tiny_model, outputs_in(folder), options)
    with rasterio.open(result.probability) as ds:
        prob = ds.read(1)
    return prob, polygon_areas(result.polygons), ds.transform, options


@pytest.fixture(scope="module")
def region(inputs, tiny_model, cluster, single, tmp_path_factory):
    """A region run in units of 128 px on the 2-process cluster: its folder and result."""
    folder = str(tmp_path_factory.mktemp("region"))
    opts = RegionOptions(unit_size=UNIT, scheduler=cluster.scheduler_address)
    return folder, map_region(inputs, tiny_model, folder, single[3], opts)


def polygon_areas(path: str) -> list[float]:
    ds = ogr.Open(path)
    return sorted(round(f["area_m2"], 2) for f in ds.GetLayer(0))


def read_mosaic(path: str) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_region_equals_a_single_run(single, region):
    prob, areas, transform, _ = single
    folder, result = region
    assert result.units == 9 and result.done == 9 and not result.failed
    with rasterio.open(result.probability) as ds:
        assert ds.transform == transform and ds.shape == prob.shape
        mosaic = ds.read(1)
    valid = prob >= 0
    np.testing.assert_array_equal(mosaic >= 0, valid)
    # Float rounding only (batches of other tiles, one thread per worker): far below any threshold's resolution.
    assert np.abs(mosaic[valid] - prob[valid]).max() < TOLERANCE
    # Slumps across unit borders are one polygon each: the same objects, areas and count as the single run.
    assert polygon_areas(result.polygons) == areas and result.count == len(areas) > 0
    assert border_slumps(mosaic, single[3].threshold) > 0  # meaningful: slumps cut by unit borders are whole
    rows = open(result.status).read().splitlines()
    assert len(rows) == 10 and all(",done," in r for r in rows[1:])


def test_rerun_resumes_only_the_removed_units(inputs, tiny_model, cluster, region, single):
    folder, first = region
    for uid in ("r0001_c0001", "r0002_c0000"):
        os.remove(os.path.join(folder, "units", uid, "probability.tif"))
    before = os.path.getmtime(os.path.join(folder, "units", "r0000_c0000", "probability.tif"))
    opts = RegionOptions(unit_size=UNIT, scheduler=cluster.scheduler_address)
    again = map_region(inputs, tiny_model, folder, single[3], opts)
    assert (again.done, again.resumed) == (2, 7)
    assert os.path.getmtime(os.path.join(folder, "units", "r0000_c0000", "probability.tif")) == before
    np.testing.assert_array_equal(read_mosaic(again.probability), read_mosaic(first.probability))
    assert polygon_areas(again.polygons) == single[1]


def test_a_worker_killed_during_a_unit_is_retried(inputs, tiny_model, cluster, single, tmp_path):
    folder = str(tmp_path)
    killed: list[str] = []

    def kill_first_running() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            units = os.path.join(folder, "units")
            for name in sorted(os.listdir(units)) if os.path.isdir(units) else ():
                status = read_status(os.path.join(units, name)) if name.endswith(".json") else None
                if status and status.get("state") == "running":
                    os.kill(status["pid"], signal.SIGKILL)
                    killed.append(status["id"])
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_running)
    killer.start()
    opts = RegionOptions(unit_size=UNIT, scheduler=cluster.scheduler_address, retries=2)
    result = map_region(inputs, tiny_model, folder, single[3], opts)
    killer.join()
    assert killed, "no unit was seen running"
    assert result.done == 9 and not result.failed
    assert read_status(os.path.join(folder, "units", f"{killed[0]}.json"))["state"] == "done"
    leftovers = [n for _, _, files in os.walk(folder) for n in files if ".part" in n]
    assert not leftovers
    prob = read_mosaic(result.probability)
    valid = single[0] >= 0
    assert np.abs(prob[valid] - single[0][valid]).max() < TOLERANCE
    assert polygon_areas(result.polygons) == single[1]


def test_a_unit_that_keeps_failing_is_reported_and_the_rest_completes(inputs, tiny_model, cluster, single,
                                                                      tmp_path):  # fmt: skip
    folder = tmp_path / "out"
    (folder / "units").mkdir(parents=True)
    (folder / "units" / "r0001_c0001").write_text("not a folder")  # the unit cannot write its files
    opts = RegionOptions(unit_size=UNIT, scheduler=cluster.scheduler_address, retries=1)
    result = map_region(inputs, tiny_model, str(folder), single[3], opts)
    assert [unit for unit, _ in result.failed] == ["r0001_c0001"] and "r0001_c0001" in result.failed[0][1]
    assert result.done == 8
    prob = read_mosaic(result.probability)
    assert (prob[128:256, 128:256] < 0).all() and (prob[:128] >= 0).all()  # the failed unit is nodata
    table = open(result.status).read()
    assert "r0001_c0001,failed," in table and table.count(",done,") == 8


def write_aoi(path: str, transform, crs_wkt: str, rings: list[list[tuple[int, int]]]) -> str:
    """A GeoPackage of polygons given as rings of (column, row) pixel corners of the grid."""
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = ds.CreateLayer("aoi", srs, ogr.wkbPolygon)
    for ring in rings:
        coords = ",".join("{} {}".format(*(transform * cr)) for cr in [*ring, ring[0]])
        feat = ogr.Feature(layer.GetLayerDefn())
        feat.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({coords}))"))
        layer.CreateFeature(feat)
    ds = None
    return path


def test_area_of_interest_maps_only_the_units_it_meets(inputs, tiny_model, cluster, single, tmp_path):
    transform = single[2]
    with rasterio.open(inputs.fusion.optical) as ds:
        crs = ds.crs.to_wkt()
    # An L over the top-left 256 × 256 px: its bounding box holds 4 units, the bottom-right one misses the L.
    ell = [(0, 0), (256, 0), (256, 120), (120, 120), (120, 256), (0, 256)]
    aoi = write_aoi(str(tmp_path / "aoi.gpkg"), transform, crs, [ell])
    opts = RegionOptions(unit_size=UNIT, scheduler=cluster.scheduler_address, aoi=aoi)
    result = map_region(inputs, tiny_model, str(tmp_path / "out"), OPTIONS, opts)
    assert (result.units, result.done, result.outside) == (4, 3, 1)
    # The mapped units equal a single run over the AOI's bounding box (the region's grid is cut to it).
    x0, y1 = transform * (0, 256)
    x1, y0 = transform * (256, 0)
    box_inputs = MapInputs(inputs.fusion, type(inputs.grid)(extent=(x0, y1, x1, y0)))
    box = map_slumps(box_inputs, tiny_model, outputs_in(tmp_path), OPTIONS)
    with rasterio.open(result.probability) as ds, rasterio.open(box.probability) as ref:
        assert ds.transform == ref.transform
        part, expected = ds.read(1), ref.read(1)
    assert part.shape == (256, 256) and part[128:, 128:].max() < 0  # the unit outside the L is nodata
    mapped = np.ones((256, 256), bool)
    mapped[128:, 128:] = False
    assert np.abs(part[mapped] - expected[mapped]).max() < TOLERANCE


def test_cancel_stops_the_work_and_a_rerun_completes(inputs, tiny_model, cluster, tmp_path):
    folder = str(tmp_path)
    seen: list[float] = []
    opts = RegionOptions(unit_size=UNIT, scheduler=cluster.scheduler_address)
    with pytest.raises(OperationCanceled):
        map_region(
            inputs,
            tiny_model,
            folder,
            OPTIONS,
            opts,
            progress=seen.append,
            is_canceled=lambda: len(seen) >= 2,  # after the first finished unit
        )
    assert not os.path.exists(os.path.join(folder, "slumps.gpkg"))
    time.sleep(1.0)  # cancelled tasks that were already running finish or stop
    done = [n for n in os.listdir(os.path.join(folder, "units")) if n.endswith(".json")]
    assert 1 <= len(done) < 9
    result = map_region(inputs, tiny_model, folder, OPTIONS, opts)
    assert result.resumed >= 1 and result.done + result.resumed == 9


def test_mapregion_algorithm_mosaics_scenes_and_maps_on_a_local_cluster(provider, inputs, tiny_model, single,
                                                                        tmp_path):  # fmt: skip
    import processing
    from qgis.core import QgsProcessingFeedback
    from rts_fusion.pipeline.environment import qgis_python

    class Log(QgsProcessingFeedback):
        lines: list[str] = []

        def pushInfo(self, info):  # noqa: N802 - QGIS API name
            self.lines.append(info)

    # The optical image as two scenes (west and east halves): the algorithm mosaics them into a VRT.
    optical = inputs.fusion.optical
    halves = []
    with rasterio.open(optical) as src:
        for name, col in (("west.tif", 0), ("east.tif", src.width // 2)):
            win = rasterio.windows.Window(col, 0, src.width // 2, src.height)
            profile = {**src.profile, "width": win.width, "height": win.height, "transform": src.window_transform(win)}
            with rasterio.open(tmp_path / name, "w", **profile) as dst:
                dst.write(src.read(window=win))
                dst.descriptions, dst.scales, dst.offsets = src.descriptions, src.scales, src.offsets
            halves.append(str(tmp_path / name))
    out = str(tmp_path / "region")
    res = processing.run(
        "rtsfusion:mapregion",
        {
            "MODEL": tiny_model,
            "OPTICAL": halves[0],
            "MORE_OPTICAL": [halves[1]],
            "THERMAL": inputs.fusion.thermal,
            "DEM": inputs.fusion.dem,
            "TEMPERATURE_SERIES": inputs.fusion.temperature_series,
            "SENSOR": 0,
            **{f"BAND_{k}": i for i, k in enumerate(("BLUE", "GREEN", "RED", "NIR", "SWIR1", "SWIR2"), start=1)},
            "DEVICE": 1,
            "THRESHOLD": single[3].threshold,
            "MIN_AREA": single[3].min_area_m2,
            "UNIT_SIZE": 192,
            "WORKERS": 2,
            "OUTPUT_FOLDER": out,
        },
        feedback=(log := Log()),
    )
    # The log names the interpreter the workers were started with (the installer's choice).
    assert any(f"Python {qgis_python()}; dashboard:" in line for line in log.lines), log.lines
    assert os.path.isfile(os.path.join(out, "inputs", "optical.vrt"))
    assert res["FAILED"] == 0 and res["COUNT"] == len(single[1])
    assert polygon_areas(res["POLYGONS"]) == single[1]
    prob = read_mosaic(res["PROBABILITY"])
    valid = single[0] >= 0
    assert np.abs(prob[valid] - single[0][valid]).max() < TOLERANCE
    assert open(res["STATUS"]).read().count(",done,") == 4
