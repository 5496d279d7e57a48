import math

import numpy as np
import pytest
from rts_fusion.core import terrain

DX = DY = 10.0


def plane(a: float, b: float, n: int = 21) -> np.ndarray:
    """z = a·east + b·north on a north-up grid (row 0 is the northernmost)."""
    rows, cols = np.mgrid[0:n, 0:n]
    east = cols * DX
    north = (n - 1 - rows) * DY
    return 4700.0 + a * east + b * north


@pytest.mark.parametrize(("a", "b"), [(0.1, 0.0), (0.0, -0.2), (0.05, 0.05), (-0.3, 0.1)])
def test_slope_and_aspect_of_a_plane(a, b):
    z = plane(a, b)
    s = terrain.slope_degrees(z, DX, DY)
    assert s[10, 10] == pytest.approx(math.degrees(math.atan(math.hypot(a, b))), abs=1e-4)
    sin_a, cos_a = terrain.aspect_sin_cos(z, DX, DY)
    aspect = math.atan2(-a, -b)  # the plane faces down its gradient
    assert sin_a[10, 10] == pytest.approx(math.sin(aspect), abs=1e-5)
    assert cos_a[10, 10] == pytest.approx(math.cos(aspect), abs=1e-5)


def test_east_rising_plane_faces_west():
    sin_a, cos_a = terrain.aspect_sin_cos(plane(0.1, 0.0), DX, DY)
    assert sin_a[5, 5] == pytest.approx(-1.0) and cos_a[5, 5] == pytest.approx(0.0, abs=1e-9)


def test_edges_are_nan_and_flat_aspect_is_zero():
    z = np.full((5, 5), 4700.0)
    s = terrain.slope_degrees(z, DX, DY)
    assert np.isnan(s[0]).all() and s[2, 2] == 0.0
    sin_a, cos_a = terrain.aspect_sin_cos(z, DX, DY)
    assert sin_a[2, 2] == 0.0 and cos_a[2, 2] == 0.0


def test_curvatures_zero_on_plane_and_known_on_bowl():
    plan, prof = terrain.curvatures(plane(0.1, 0.2), DX, DY)
    assert abs(plan[10, 10]) < 1e-9 and abs(prof[10, 10]) < 1e-9
    c = 0.001
    n = 21
    rows, cols = np.mgrid[0:n, 0:n]
    x, y = (cols - 10) * DX, (10 - rows) * DY
    bowl = 4700 + c * (x * x + y * y)
    plan, prof = terrain.curvatures(bowl, DX, DY)
    # Away from the centre along the east axis: profile −2c, plan +2c (Zevenbergen & Thorne).
    assert prof[10, 15] == pytest.approx(-2 * c, rel=1e-6)
    assert plan[10, 15] == pytest.approx(2 * c, rel=1e-6)


def test_tpi_zero_on_plane_and_negative_in_bowl():
    assert abs(terrain.tpi(plane(0.1, -0.2), 30.0, DX, DY)[10, 10]) < 1e-6
    c = 0.01
    rows, cols = np.mgrid[0:21, 0:21]
    x, y = (cols - 10) * DX, (10 - rows) * DY
    bowl = c * (x * x + y * y)
    k = terrain.disc_kernel(30.0, DX, DY)
    ry, rx = np.array(k.shape) // 2
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    mean_d2 = ((xx * DX) ** 2 + (yy * DY) ** 2)[k > 0].mean()
    assert terrain.tpi(bowl, 30.0, DX, DY)[10, 10] == pytest.approx(-c * mean_d2, rel=1e-6)


def test_tri_of_plane_matches_brute_force_and_survives_high_elevation():
    z = plane(0.1, 0.05) + 5000.0  # high elevation must not eat precision
    r = 30.0
    k = terrain.disc_kernel(r, DX, DY)
    ry, rx = np.array(k.shape) // 2
    window = z[10 - ry : 10 + ry + 1, 10 - rx : 10 + rx + 1]
    brute = math.sqrt(((window - z[10, 10]) ** 2)[k > 0].mean())
    assert terrain.tri(z, r, DX, DY)[10, 10] == pytest.approx(brute, rel=1e-6)
    assert terrain.tri(np.full((9, 9), 4800.0), r, DX, DY)[4, 4] == pytest.approx(0.0, abs=1e-6)


def test_halo_covers_kernel():
    assert terrain.terrain_halo(100.0, 10.0, 10.0) == 10
    assert terrain.terrain_halo(5.0, 10.0, 10.0) == 1
