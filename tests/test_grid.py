import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window
from rts_fusion.core.errors import AlignmentError
from rts_fusion.core.grid import build_target_grid, inspect_source, iter_windows, read_window, warped_vrt


def warp_window(ds, bands, grid, window, resampling, halo=0):
    with warped_vrt(ds, grid, resampling, halo) as vrt:
        return read_window(vrt, bands, window, halo)


def write(path, data, crs, transform, nodata=None):
    data = np.atleast_3d(data)
    if data.ndim == 3 and data.shape[0] != 1 and data.shape[-1] == 1:
        data = data[..., 0][None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=CRS.from_user_input(crs),
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data)
    return str(path)


@pytest.fixture
def utm_source(tmp_path):
    """100 × 80 px at 10 m in UTM 46N, value = column index (a ramp eastwards)."""
    data = np.tile(np.arange(100, dtype=np.float32), (80, 1))[None]
    return write(tmp_path / "opt.tif", data, "EPSG:32646", Affine(10, 0, 500000, 0, -10, 3870000))


def test_default_grid_is_optical_grid_over_intersection(tmp_path, utm_source):
    # A 30 m source covering only the eastern half, offset by 5 m from the optical lattice.
    other = write(
        tmp_path / "t.tif", np.ones((1, 40, 20), np.float32), "EPSG:32646", Affine(30, 0, 500505, 0, -30, 3870000)
    )
    grid = build_target_grid([inspect_source(utm_source, "optical"), inspect_source(other, "thermal")])
    assert grid.pixel_size == (10.0, 10.0)
    xmin, ymin, xmax, ymax = grid.bounds
    # Snapped inwards onto the optical lattice: 500505 → 500510; optical ends at 501000.
    assert (xmin, xmax, ymax) == (500510.0, 501000.0, 3870000.0)
    assert grid.width == 49 and grid.height == 80


def test_geographic_source_and_other_pixel_size(tmp_path, utm_source):
    # A DEM in WGS 84 that fully covers the optical footprint.
    dem = write(
        tmp_path / "dem.tif",
        np.full((1, 600, 300), 4700, np.float32),
        "EPSG:4326",
        Affine(1 / 3600, 0, 92.98, 0, -1 / 3600, 35.05),
    )
    opt = inspect_source(utm_source, "optical")
    grid = build_target_grid([opt, inspect_source(dem, "DEM")])
    assert grid.bounds == pytest.approx((500000, 3869200, 501000, 3870000))
    grid20 = build_target_grid([opt, inspect_source(dem, "DEM")], pixel_size=20.0)
    assert grid20.width == 50 and grid20.height == 40
    win = Window(0, 0, grid.width, grid.height)
    with rasterio.open(dem) as ds:
        out = warp_window(ds, [1], grid, win, Resampling.cubic)
    assert np.allclose(out, 4700.0)


def test_warp_onto_own_lattice_is_identity_and_reprojection_is_close(tmp_path, utm_source):
    grid = build_target_grid([inspect_source(utm_source, "optical")])
    with rasterio.open(utm_source) as ds:
        same = warp_window(ds, [1], grid, Window(0, 0, grid.width, grid.height), Resampling.bilinear)[0]
        assert np.array_equal(same, ds.read(1))
        # Onto a 20 m grid in another UTM zone: the east ramp survives (value ≈ column / 10 m).
        other = build_target_grid([inspect_source(utm_source, "optical")], crs="EPSG:32645", pixel_size=20.0)
        warped = warp_window(ds, [1], other, Window(0, 0, other.width, other.height), Resampling.bilinear)[0]
    assert np.isfinite(warped).mean() > 0.5
    assert np.nanmax(warped) > 90 and np.nanmin(warped) < 10


def test_halo_reads_beyond_the_grid(tmp_path, utm_source):
    big = write(
        tmp_path / "dem.tif",
        np.full((1, 120, 140), 5.0, np.float32),
        "EPSG:32646",
        Affine(10, 0, 499800, 0, -10, 3870100),
    )
    grid = build_target_grid([inspect_source(utm_source, "optical")])
    with rasterio.open(big) as ds:
        out = warp_window(ds, [1], grid, Window(0, 0, 10, 10), Resampling.cubic, halo=3)
    assert out.shape == (1, 16, 16) and np.allclose(out, 5.0)
    with rasterio.open(utm_source) as ds:  # the optical ends at the grid edge: halo outside is NaN
        out = warp_window(ds, [1], grid, Window(0, 0, 10, 10), Resampling.bilinear, halo=3)
    assert np.isnan(out[0, :3]).all() and np.isfinite(out[0, 3:, 3:]).all()


def test_nodata_becomes_nan(tmp_path):
    data = np.ones((1, 10, 10), np.uint8)
    data[0, :5] = 255
    path = write(tmp_path / "n.tif", data, "EPSG:32646", Affine(10, 0, 0, 0, -10, 100), nodata=255)
    grid = build_target_grid([inspect_source(path, "optical")])
    with rasterio.open(path) as ds:
        out = warp_window(ds, [1], grid, Window(0, 0, 10, 10), Resampling.nearest)[0]
    assert np.isnan(out[:5]).all() and (out[5:] == 1).all()


def test_no_overlap_error_names_layers_and_extents(tmp_path, utm_source):
    far = write(
        tmp_path / "far.tif", np.ones((1, 10, 10), np.float32), "EPSG:32646", Affine(10, 0, 700000, 0, -10, 3870000)
    )
    with pytest.raises(AlignmentError) as err:
        build_target_grid([inspect_source(utm_source, "optical"), inspect_source(far, "thermal")])
    msg = str(err.value)
    assert "do not overlap" in msg and "optical" in msg and "thermal" in msg and "700000" in msg


def test_ungeoreferenced_raster_refused(tmp_path):
    path = tmp_path / "raw.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8") as dst:
        dst.write(np.ones((1, 4, 4), np.uint8))
    with pytest.raises(AlignmentError, match="no georeferencing"):
        inspect_source(str(path), "thermal")


def test_bad_grid_options(utm_source):
    src = inspect_source(utm_source, "optical")
    with pytest.raises(AlignmentError, match="pixel size"):
        build_target_grid([src], crs="EPSG:4326")
    with pytest.raises(AlignmentError, match="Unknown target CRS"):
        build_target_grid([src], crs="EPSG:999999")
    with pytest.raises(AlignmentError, match="do not overlap"):
        build_target_grid([src], extent=(0, 0, 10, 10))


def test_windowed_reads_match_one_read(tmp_path, utm_source):
    grid = build_target_grid([inspect_source(utm_source, "optical")], crs="EPSG:32645", pixel_size=7.0)
    with rasterio.open(utm_source) as ds, warped_vrt(ds, grid, Resampling.cubic, 2) as vrt:
        whole = read_window(vrt, [1], Window(0, 0, grid.width, grid.height), 2)[0]
        part = read_window(vrt, [1], Window(30, 20, 25, 25), 2)[0]
    np.testing.assert_array_equal(part, whole[20:49, 30:59])


def test_windows_cover_grid_exactly(utm_source):
    grid = build_target_grid([inspect_source(utm_source, "optical")])
    wins = iter_windows(grid, 32)
    assert sum(w.width * w.height for w in wins) == grid.width * grid.height


def test_real_landsat_ungeoreferenced_is_refused(shared_data):
    raw = next((shared_data / "landsat8_l2_surface_temperature" / "raw_ungeoreferenced").glob("*ST_B10.TIF"))
    with pytest.raises(AlignmentError, match="no georeferencing"):
        inspect_source(str(raw), "thermal")
