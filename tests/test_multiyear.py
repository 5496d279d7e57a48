"""On the multi-year sample, the analyses recover what the generator put in."""

import pytest
from rts_fusion.core.change import compare_inventories
from rts_fusion.core.inventory import inventory_statistics, write_report
from rts_fusion.core.trends import parse_year_rasters, temporal_trends
from rts_fusion.core.vector import read_polygons


def test_generator_grows_and_adds_slumps(multiyear_scene):
    s = multiyear_scene
    counts = [len(read_polygons(p)) for p in s.inventories]
    assert counts == sorted(counts) and counts[-1] == s.base.n_slumps
    assert counts[0] == sum(a == s.years[0] for a in s.appeared) < counts[-1]


def test_trends_recover_falling_ndvi_and_rising_lst_in_slumps(multiyear_scene, tmp_path):
    s = multiyear_scene
    res = temporal_trends(s.inventories[-1], parse_year_rasters(list(s.ndvi + s.lst)), ring_width=60)
    rows = {(r["variable"], r["zone"]): r for r in res.rows if r["scope"] == "all"}
    assert rows[("ndvi", "slump")]["trend"] == "decreasing" and rows[("ndvi", "slump")]["sen_slope"] < -0.02
    assert abs(rows[("ndvi", "ring")]["sen_slope"]) < 0.01  # undisturbed ground: no NDVI trend
    assert rows[("ndvi", "difference")]["sen_slope"] < -0.02
    assert rows[("lst", "slump")]["sen_slope"] > rows[("lst", "ring")]["sen_slope"] + 0.2
    assert rows[("lst", "difference")]["trend"] == "increasing"
    assert len({r["scope"] for r in res.rows}) == s.base.n_slumps + 1


def test_change_detection_finds_the_new_and_grown_slumps(multiyear_scene):
    s = multiyear_scene
    res = compare_inventories(s.inventories[0], s.inventories[-1])
    assert res.totals["n_new"] == sum(a > s.years[0] for a in s.appeared)
    assert res.totals["n_grown"] == sum(a == s.years[0] for a in s.appeared)
    assert res.totals["n_vanished"] == 0 and res.totals["n_shrunk"] == 0
    grown = [r for r in res.records if r["change"] == "grown"]
    for r in grown:  # each started at 45–70 % of its final area
        assert 100 * (1 / 0.7 - 1) - 3 <= r["change_pct"] <= 100 * (1 / 0.45 - 1) + 3
        assert r["retreat_m"] > 0


def test_inventory_statistics_show_slumps_near_water(multiyear_scene, tmp_path):
    s = multiyear_scene
    res = inventory_statistics(s.inventories[-1], s.base.dem, optical_path=s.base.optical)
    for factor in ("elevation", "slope", "aspect", "slope position", "distance to water"):
        rows = [r for r in res.rows if r["factor"] == factor]
        assert sum(r["slump_share"] for r in rows) == pytest.approx(1.0, abs=1e-3)
        assert sum(r["slumps"] for r in rows) == s.base.n_slumps
    water = [r for r in res.rows if r["factor"] == "distance to water"]
    near = [r for r in water if r["upper"] is not None and r["upper"] <= 500]
    within_1km = [r for r in water if r["upper"] is not None and r["upper"] <= 1000]
    # Slump centres are placed 20–400 m from water; the outlines reach up to ~260 m further.
    assert sum(r["slump_share"] for r in within_1km) > 0.95
    assert sum(r["slump_share"] for r in near) > 1.5 * sum(r["area_share"] for r in near)
    html = write_report(str(tmp_path / "inv.html"), res)
    assert open(html).read().count("<img") == 5
    assert all(p.stat().st_size > 1000 for p in (tmp_path / "inv_files").glob("*.png"))
    assert res.n_slumps == s.base.n_slumps
    assert res.water_source.startswith("NDWI") and res.pixel_size_m == pytest.approx(28, abs=4)
