import numpy as np
import pytest
from rts_fusion.core import spectral
from rts_fusion.core.errors import FeatureError

PIXEL = {"blue": 0.05, "green": 0.08, "red": 0.06, "nir": 0.30, "swir1": 0.20, "swir2": 0.10}


def arr(v):
    return np.full((2, 2), v, dtype=np.float32)


def test_ndvi_known_value():
    assert spectral.ndvi(arr(0.30), arr(0.06))[0, 0] == pytest.approx(0.24 / 0.36, rel=1e-6)


def test_ndwi_ndmi_nbr_known_values():
    assert spectral.ndwi(arr(0.08), arr(0.30))[0, 0] == pytest.approx(-0.22 / 0.38, rel=1e-6)
    assert spectral.ndmi(arr(0.30), arr(0.20))[0, 0] == pytest.approx(0.1 / 0.5, rel=1e-6)
    assert spectral.nbr(arr(0.30), arr(0.10))[0, 0] == pytest.approx(0.2 / 0.4, rel=1e-6)


def test_evi_known_value():
    expected = 2.5 * (0.30 - 0.06) / (0.30 + 6 * 0.06 - 7.5 * 0.05 + 1)
    assert spectral.evi(arr(0.30), arr(0.06), arr(0.05))[0, 0] == pytest.approx(expected, rel=1e-6)


def test_zero_denominator_gives_nan_not_inf():
    out = spectral.ndvi(arr(0.0), arr(0.0))
    assert np.isnan(out).all()


@pytest.mark.parametrize(
    ("sensor", "component", "expected"),
    [
        # Hand-computed dot products of the published coefficients with PIXEL.
        (
            "landsat8",
            "TCB",
            0.3029 * 0.05 + 0.2786 * 0.08 + 0.4733 * 0.06 + 0.5599 * 0.30 + 0.508 * 0.20 + 0.1872 * 0.10,
        ),
        (
            "landsat8",
            "TCG",
            -0.2941 * 0.05 - 0.243 * 0.08 - 0.5424 * 0.06 + 0.7276 * 0.30 + 0.0713 * 0.20 - 0.1608 * 0.10,
        ),
        (
            "sentinel2",
            "TCW",
            0.2578 * 0.05 + 0.2305 * 0.08 + 0.0883 * 0.06 + 0.1071 * 0.30 - 0.7611 * 0.20 - 0.5308 * 0.10,
        ),
        (
            "landsat5",
            "TCB",
            0.2043 * 0.05 + 0.4158 * 0.08 + 0.5524 * 0.06 + 0.5741 * 0.30 + 0.3124 * 0.20 + 0.2303 * 0.10,
        ),
    ],
)
def test_tasseled_cap_of_known_pixel(sensor, component, expected):
    bands = {k: arr(v) for k, v in PIXEL.items()}
    assert spectral.tasseled_cap(bands, sensor, component)[0, 0] == pytest.approx(expected, abs=1e-6)


def test_vegetation_is_green_and_wet_in_tasseled_cap():
    veg = {k: arr(v) for k, v in PIXEL.items()}
    soil = {k: arr(v) for k, v in zip(PIXEL, (0.10, 0.14, 0.18, 0.23, 0.31, 0.26))}
    for sensor in ("landsat8", "sentinel2", "landsat5"):
        assert spectral.tasseled_cap(veg, sensor, "TCG")[0, 0] > spectral.tasseled_cap(soil, sensor, "TCG")[0, 0]


def test_unknown_sensor_is_refused_not_invented():
    bands = {k: arr(v) for k, v in PIXEL.items()}
    with pytest.raises(FeatureError, match="Landsat 8/9 OLI"):
        spectral.tasseled_cap(bands, "other", "TCB")
