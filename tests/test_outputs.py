"""Safe output writing (core.outputs): temporary file beside the target, commit on success only."""

from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rts_fusion.core.outputs import AtomicOutputs, OutputError, atomic_output, check_distinct, check_not_input
from rts_fusion.core.vector import PolygonRecord, read_polygons, write_polygons

SQUARE = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)]
WKT = rasterio.crs.CRS.from_epsg(32606).to_wkt()


def _tif(path: str, value: float) -> None:
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "float32"}
    with rasterio.open(path, "w", transform=from_origin(0, 8, 1, 1), crs="EPSG:32606", **profile) as dst:
        dst.write(np.full((1, 8, 8), value, np.float32))


def test_success_replaces_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.tif"
    _tif(str(target), 1.0)
    (tmp_path / "out.tif.aux.xml").write_text("<stale statistics/>")
    with atomic_output(str(target), "probability") as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".tif") and tmp != str(target)
        _tif(tmp, 2.0)
        with open(tmp + ".aux.xml", "w") as fh:
            fh.write("<new/>")
    with rasterio.open(target) as src:
        assert src.read(1)[0, 0] == 2.0
    assert (tmp_path / "out.tif.aux.xml").read_text() == "<new/>"
    assert sorted(os.listdir(tmp_path)) == ["out.tif", "out.tif.aux.xml"]


def test_stale_sidecar_of_old_target_is_removed(tmp_path):
    target = tmp_path / "out.tif"
    _tif(str(target), 1.0)
    (tmp_path / "out.tif.aux.xml").write_text("<stale statistics/>")
    (tmp_path / "out.gpkg").write_text("unrelated user file")
    with atomic_output(str(target)) as tmp:
        _tif(tmp, 2.0)
    assert sorted(os.listdir(tmp_path)) == ["out.gpkg", "out.tif"]


def test_failure_keeps_existing_target_and_removes_partial_files(tmp_path):
    target = tmp_path / "out.tif"
    _tif(str(target), 1.0)
    before = target.read_bytes()
    with pytest.raises(RuntimeError), atomic_output(str(target)) as tmp:
        _tif(tmp, 2.0)
        with open(tmp + ".aux.xml", "w") as fh:
            fh.write("<x/>")
        raise RuntimeError("boom")
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.tif"]


def test_missing_folder_created_and_removed_again_on_failure(tmp_path):
    target = tmp_path / "a" / "b" / "out.gpkg"
    with pytest.raises(KeyboardInterrupt), atomic_output(str(target)) as tmp:
        write_polygons(tmp, "slumps", WKT, [PolygonRecord(SQUARE, {"id": 1})])
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []
    with atomic_output(str(target)) as tmp:
        write_polygons(tmp, "slumps", WKT, [PolygonRecord(SQUARE, {"id": 1})])
    assert len(read_polygons(str(target))) == 1
    assert os.listdir(target.parent) == ["out.gpkg"]


def test_unwritable_folder_and_file_in_the_way_are_named(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        atomic_output(str(blocker / "out.tif"), "slump mask")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(OutputError, match="slump mask.*not writable"):
            atomic_output(str(locked / "sub" / "out.tif"), "slump mask")
    finally:
        locked.chmod(0o700)


def test_shapefile_parts_move_together(tmp_path):
    from osgeo import gdal

    src = tmp_path / "src.gpkg"
    write_polygons(str(src), "slumps", WKT, [PolygonRecord(SQUARE, {"id": 1})])
    with atomic_output(str(tmp_path / "out.shp")) as tmp:
        gdal.VectorTranslate(tmp, str(src))
    names = sorted(n for n in os.listdir(tmp_path) if n.startswith("out."))
    assert {"out.shp", "out.shx", "out.dbf", "out.prj"} <= set(names)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_outputs_fail_together(tmp_path):
    a, b = tmp_path / "new" / "p.tif", tmp_path / "new" / "m.tif"
    with pytest.raises(ValueError), AtomicOutputs([(str(a), "probability"), (str(b), "mask")]) as (ta, tb):
        _tif(ta, 1.0)
        _tif(tb, 1.0)
        raise ValueError
    assert os.listdir(tmp_path) == []


def test_output_that_is_an_input_is_refused(tmp_path):
    src = tmp_path / "inv.gpkg"
    src.write_text("x")
    link = tmp_path / "link.gpkg"
    link.symlink_to(src)
    hard = tmp_path / "hard.gpkg"
    os.link(src, hard)
    for out in (src, link, hard):
        with pytest.raises(OutputError, match="slump polygons.*input inventory"):
            check_not_input(str(out), {"inventory": f"{src}|layername=slumps"}, "slump polygons")
    check_not_input(str(tmp_path / "other.gpkg"), {"inventory": str(src), "aoi": None})
    with pytest.raises(OutputError, match="probability and the mask"):
        check_distinct({"probability": str(src), "mask": str(link)})
