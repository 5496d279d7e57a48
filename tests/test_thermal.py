import datetime as dt

import numpy as np
import pytest
from rts_fusion.core import thermal
from rts_fusion.core.errors import FeatureError


def test_lst_from_kelvin_celsius_and_scaled_dn():
    v = np.array([[10.0]])
    assert thermal.lst_kelvin(v, thermal.ThermalSpec(unit="C"))[0, 0] == pytest.approx(283.15)
    assert thermal.lst_kelvin(v + 280, thermal.ThermalSpec(unit="K"))[0, 0] == pytest.approx(290.0)
    dn = np.array([[40000.0]])
    spec = thermal.ThermalSpec(unit="K", scale=0.00341802, offset=149.0)
    assert thermal.lst_kelvin(dn, spec)[0, 0] == pytest.approx(40000 * 0.00341802 + 149.0, rel=1e-6)


def test_file_scale_used_only_when_spec_leaves_it_open():
    dn = np.array([[100.0]])
    assert thermal.lst_kelvin(dn, thermal.ThermalSpec(), scale=2.0, offset=100.0)[0, 0] == pytest.approx(300.0)
    assert thermal.lst_kelvin(dn, thermal.ThermalSpec(scale=1.0, offset=200.0), 2.0, 100.0)[0, 0] == pytest.approx(
        300.0
    )


def test_radiance_to_brightness_temperature_with_planck_constants():
    k1, k2 = 607.76, 1260.56  # Landsat TM band 6
    radiance = k1 / (np.exp(k2 / 300.0) - 1)
    spec = thermal.ThermalSpec(k1=k1, k2=k2)
    assert thermal.lst_kelvin(np.array([[radiance]]), spec)[0, 0] == pytest.approx(300.0, rel=1e-5)


def test_implausible_lst_is_refused():
    with pytest.raises(FeatureError, match="not plausible"):
        thermal.check_plausible_lst(np.full(10, 40000.0))
    thermal.check_plausible_lst(np.full(10, 290.0))


def test_anomaly_is_standardised():
    v = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    out = thermal.standardized_anomaly(v, float(v.mean()), float(v.std()))
    assert out.mean() == pytest.approx(0.0, abs=1e-6) and out.std() == pytest.approx(1.0, rel=1e-5)


def test_degree_days_of_constant_and_sinusoidal_series():
    dates = [dt.date(2023, m, 15) for m in range(1, 13)]
    warm = np.full((12, 1, 1), 5.0)
    tdd, fdd = thermal.degree_days(warm, dates)
    assert tdd[0, 0] == pytest.approx(5.0 * 365, rel=1e-6) and fdd[0, 0] == 0
    assert thermal.freeze_thaw_index(tdd, fdd)[0, 0] == pytest.approx(1.0)
    cold = np.full((12, 1, 1), -4.0)
    tdd, fdd = thermal.degree_days(cold, dates)
    assert fdd[0, 0] == pytest.approx(4.0 * 365, rel=1e-6)
    assert thermal.freeze_thaw_index(tdd, fdd)[0, 0] == pytest.approx(0.0)
    # Symmetric cycle around 0 °C: equal thawing and freezing, FTI 0.5.
    doy = np.array([d.timetuple().tm_yday for d in dates])
    sym = 10 * np.sin(2 * np.pi * (doy - doy[0]) / 365.0)[:, None, None]
    tdd, fdd = thermal.degree_days(sym, dates)
    assert thermal.freeze_thaw_index(tdd, fdd)[0, 0] == pytest.approx(0.5, abs=0.03)


def test_dates_parse_and_errors():
    assert thermal.parse_dates(["2023-01-15 (January)"]) == [dt.date(2023, 1, 15)]
    with pytest.raises(FeatureError, match="YYYY-MM-DD"):
        thermal.parse_dates(["January"])
    with pytest.raises(FeatureError, match="at least two"):
        thermal.degree_days(np.zeros((1, 1, 1)), [dt.date(2023, 1, 1)])
