"""Region mapping without a cluster: the unit plan on one tile lattice, the console command's errors."""

import pytest
from rts_fusion.core.grid import TargetGrid
from rts_fusion.core.tiling import TileLayout
from rts_fusion.pipeline.cli import main
from rts_fusion.pipeline.region import _aoi_geometry, unit_windows

GRID = TargetGrid("", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), 1000, 700)


def test_units_cover_the_grid_once_and_hold_every_tile_touching_their_core():
    units = unit_windows(GRID, 256, 64, 16)
    assert len(units) == 4 * 3 and len({uid for uid, _ in units}) == 12
    covered = 0
    for _, unit in units:
        c, r, w, h = unit.core
        covered += w * h
        layout = TileLayout(GRID.height, GRID.width, 64, 16, unit.core)  # the region's own lattice
        hc, hr, hw, hh = unit.halo
        assert hc == layout.cols[0] and hr == layout.rows[0]
        assert hc + hw == layout.cols[-1] + 64 and hr + hh == layout.rows[-1] + 64
        assert hc <= c and hr <= r and c + w <= hc + hw and r + h <= hr + hh
        assert 0 <= hc and 0 <= hr and hc + hw <= GRID.width and hr + hh <= GRID.height
    assert covered == GRID.width * GRID.height


def test_console_command_help_and_a_missing_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["map-region", "--help"])
    assert done.value.code == 0 and "--scheduler" in capsys.readouterr().out
    code = main(["map-region", "--optical", str(tmp_path / "nope.tif"), "--model", "m.safetensors",
                 "--output-folder", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "The optical raster" in err and "nope.tif" in err and "Traceback" not in err


def test_area_of_interest_is_read_as_every_polygon_layer_is(tmp_path):
    from osgeo import ogr, osr
    from rts_fusion.core.errors import RtsFusionError
    from rts_fusion.core.vector import PolygonRecord, write_polygons

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32646)
    grid = TargetGrid(srs.ExportToWkt(), (10.0, 0.0, 500000.0, 0.0, -10.0, 3900000.0), 100, 100)
    path = str(tmp_path / "aoi.gpkg")
    squares = [
        PolygonRecord([(x0, 3899000), (x0 + 200, 3899000), (x0 + 200, 3899200), (x0, 3899200)], {"keep": keep})
        for keep, x0 in ((1, 500000), (0, 500500))
    ]
    write_polygons(path, "aoi", grid.crs_wkt, squares)
    ds = ogr.Open(path, 1)
    points = ds.CreateLayer("points", srs, ogr.wkbPoint)
    feat = ogr.Feature(points.GetLayerDefn())
    feat.SetGeometry(ogr.CreateGeometryFromWkt("POINT (500050 3899050)"))
    points.CreateFeature(feat)
    ds = None
    assert _aoi_geometry(path + "|layername=aoi", grid).GetArea() == pytest.approx(2 * 200 * 200)
    assert _aoi_geometry(path + "|layername=aoi|subset=keep = 1", grid).GetArea() == pytest.approx(200 * 200)
    with pytest.raises(RtsFusionError, match="holds points; polygons are needed"):
        _aoi_geometry(path + "|layername=points", grid)
