"""The dock, its chart, the menu/toolbar and the dependency check, with pytest-qgis's offscreen iface."""

import os
import sys

import pytest
from conftest import ensure_provider, wait_for, wait_until_started
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtGui import QColor
from rts_fusion.core.features import PAPER
from rts_fusion.plugin.chart import GROUP_COLOURS, Bar, BarChartWidget
from rts_fusion.plugin.dock_logic import (
    guess_band_mapping,
    guess_sensor,
    importance_parameters,
    map_parameters,
    unmet_needs,
)


# ----- pure logic ---------------------------------------------------------------------------------------------
def test_band_mapping_is_guessed_from_band_names():
    s2 = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    assert guess_sensor(s2) == "sentinel2"
    assert guess_band_mapping(s2) == {"blue": 1, "green": 2, "red": 3, "nir": 7, "swir1": 9, "swir2": 10}
    l8 = [f"SR_B{i}" for i in range(1, 8)]
    assert guess_sensor(l8) == "landsat8"
    assert guess_band_mapping(l8) == {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir1": 6, "swir2": 7}
    l5 = ["B1", "B2", "B3", "B4", "B5", "B7"]
    assert guess_band_mapping(l5, "landsat5") == {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 6}
    named = ["Red", "Green", "Blue", "Near infrared"]
    assert guess_band_mapping(named) == {"red": 1, "green": 2, "blue": 3, "nir": 4}
    assert guess_band_mapping(["", "", ""]) == {}  # unnamed bands: no silent default order
    sample = ["B2 (blue)", "B3 (green)", "B4 (red)", "B8 (NIR)", "B11 (SWIR1)", "B12 (SWIR2)"]
    assert guess_band_mapping(sample) == {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 6}


def test_unmet_needs_name_the_missing_inputs():
    all_bands = {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 6}
    assert unmet_needs(PAPER, True, True, True, all_bands, "sentinel2") == []
    problems = unmet_needs(PAPER, False, False, False, {"blue": 1, "green": 2, "red": 3}, "other")
    text = "\n".join(problems)
    assert "LST needs a thermal layer" in text and "DEM needs a DEM" in text
    assert "FTI needs a temperature series" in text and "NIR band" in text and "Tasseled Cap" in text
    assert unmet_needs(("RED", "GREEN", "BLUE"), False, False, False, {"blue": 1, "green": 2, "red": 3}, "other") == []


def test_dock_parameters_match_the_algorithms(provider, tmp_path):
    registry = QgsApplication.processingRegistry()
    params = map_parameters("m.safetensors", "o", None, "d", None, {"blue": 1}, "landsat8", 1, None, 500.0, "/x")
    names = {p.name() for p in registry.algorithmById("rtsfusion:mapslumps").parameterDefinitions()}
    assert set(params) <= names and params["SENSOR"] == 1 and params["POLYGONS"] == "/x/thaw_slumps.gpkg"
    params = importance_parameters("m", "s", "t", 2, 3, 0, str(tmp_path))
    names = {p.name() for p in registry.algorithmById("rtsfusion:bandimportance").parameterDefinitions()}
    assert set(params) <= names


# ----- plugin: menu, toolbar, dependency message ------------------------------------------------------------------
def test_missing_torch_shows_an_install_message_and_the_plugin_still_loads(qgis_iface, qgis_processing, monkeypatch):
    import rts_fusion

    registry = QgsApplication.processingRegistry()
    earlier = registry.providerById("rtsfusion")
    if earlier is not None:
        registry.removeProvider(earlier)
    # torch hidden: `import torch` fails. transformers too, or it would cache "no torch" for the whole session.
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "transformers", None)
    plugin = rts_fusion.classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert registry.algorithmById("rtsfusion:detect") is not None
        item = plugin.deps_message
        assert item is not None and "torch" in item.text()
        assert qgis_iface.messageBar().currentItem() is item
        from qgis.PyQt.QtWidgets import QPushButton

        assert "Install…" in [b.text() for b in item.findChildren(QPushButton)]
        assert {a.text() for a in plugin.actions} >= {
            "RTS Fusion panel",
            "Install deep-learning dependencies…",
            "Diagnostics…",
            "RTS Fusion help",
        }
        assert plugin.toolbar is not None and plugin.dock_action in plugin.toolbar.actions()
        report = plugin.show_diagnostics()
        assert "torch: MISSING" in report and "QGIS 3." in report
    finally:
        plugin.unload()
    assert registry.providerById("rtsfusion") is None
    ensure_provider()  # for the tests that follow


def test_no_message_when_everything_is_installed(qgis_iface, qgis_processing):
    pytest.importorskip("torch")
    pytest.importorskip("skimage")
    import rts_fusion

    plugin = rts_fusion.classFactory(qgis_iface)
    assert plugin.check_dependencies() == [] and plugin.deps_message is None
    assert plugin.import_check.waitForFinished(300_000)  # the subprocess import check finds nothing wrong either
    assert plugin.import_check is None and plugin.deps_message is None


# ----- chart ---------------------------------------------------------------------------------------------------
def test_chart_renders_the_values_it_is_given(qgis_app):
    chart = BarChartWidget()
    chart.resize(400, 300)
    bars = [Bar("BLUE", 0.6, 0.05, "optical"), Bar("LST", 0.3, 0.0, "auxiliary"), Bar("NDVI", -0.1, 0.0, "optical")]
    chart.set_bars(bars, "Permutation importance", "F1 drop")
    image = chart.grab().toImage()
    rects = chart.bar_rects()
    assert [b.label for b in chart.bars()] == ["BLUE", "LST", "NDVI"]
    for bar, rect in zip(bars, rects):
        c = rect.center()
        assert QColor(image.pixel(int(c.x()), int(c.y()))) == GROUP_COLOURS[bar.group]
    zero = chart.value_to_y(0.0)
    assert rects[0].height() == pytest.approx(2 * rects[1].height(), rel=0.02)  # 0.6 vs 0.3
    assert rects[2].top() == pytest.approx(zero, abs=1)  # a negative bar hangs below the zero line
    left = int(rects[0].left()) - 3
    assert QColor(image.pixel(left, int(rects[0].center().y()))) != GROUP_COLOURS["optical"]  # bars have edges


# ----- the dock ------------------------------------------------------------------------------------------------
def make_dock(qgis_iface, layers, model):
    from rts_fusion.plugin.dock import RtsFusionDock

    dock = RtsFusionDock(qgis_iface.mainWindow())
    dock.optical.setLayer(layers["optical"])
    dock.thermal.setLayer(layers["thermal"])
    dock.dem.setLayer(layers["dem"])
    dock.series.setLayer(layers["series"])
    dock.model_file.setFilePath(model)
    dock.worker_python = sys.executable  # the test venv's Python stands for QGIS's own
    return dock


@pytest.mark.end_to_end
def test_dock_lists_rasters_shows_the_card_and_maps_slumps(provider, qgis_iface, scene_layers, tiny_model, tmp_path):
    dock = make_dock(qgis_iface, scene_layers, tiny_model)
    listed = [dock.optical.layer(i) for i in range(dock.optical.count())]
    assert listed[0] is None  # the empty choice: nothing is the optical image by default
    assert listed[1:] and all(isinstance(layer, QgsRasterLayer) for layer in listed[1:])
    assert scene_layers["slumps"] not in listed
    assert "Bands (13)" in dock.card_view.toPlainText()
    assert dock.mapped_bands() == {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 6}
    assert dock.sensor.currentData() == "sentinel2"
    assert dock.check_needs() == []
    dock.thermal.setLayer(None)
    assert "LST needs a thermal layer" in dock.needs_label.text()
    assert dock.run_mapping() is False  # refused while the layers cannot supply the bands
    dock.thermal.setLayer(scene_layers["thermal"])
    dock.device.setCurrentIndex(1)
    dock.output_folder.setFilePath(str(tmp_path))
    assert dock.run_mapping() is True
    wait_for(dock)
    assert dock.last_success, dock.status.text()
    group = QgsProject.instance().layerTreeRoot().findGroup("RTS Fusion results")
    names = {node.layer().name() for node in group.findLayers()}
    assert names == {"Thaw slumps", "Slump mask", "Slump probability", "Fused stack"}
    slumps = next(n.layer() for n in group.findLayers() if n.layer().name() == "Thaw slumps")
    assert slumps.featureCount() == dock.last_results["COUNT"] > 0
    assert slumps.renderer().type() != "" and os.path.exists(tmp_path / "thaw_slumps.gpkg")
    dock.deleteLater()


@pytest.mark.end_to_end
def test_dock_cancel_leaves_no_results(provider, qgis_iface, scene_layers, tiny_model, tmp_path):
    dock = make_dock(qgis_iface, scene_layers, tiny_model)
    dock.output_folder.setFilePath(str(tmp_path))
    dock.device.setCurrentIndex(1)
    assert dock.run_mapping() is True
    dock.cancel()
    wait_for(dock)
    assert dock.last_success is False and dock.status.text() == "Cancelled."
    assert not (tmp_path / "thaw_slumps.gpkg").exists() and not (tmp_path / "slump_probability.tif").exists()
    assert QgsProject.instance().layerTreeRoot().findGroup("RTS Fusion results") is None
    dock.deleteLater()


@pytest.mark.end_to_end
def test_dock_band_importance_fills_the_chart(provider, qgis_iface, training_stack, tiny_model, tmp_path):
    from rts_fusion.plugin.dock import RtsFusionDock

    stack_path, slumps_path = training_stack
    stack = QgsRasterLayer(stack_path, "stack")
    truth = QgsVectorLayer(slumps_path, "truth", "ogr")
    QgsProject.instance().addMapLayers([stack, truth])
    try:
        dock = RtsFusionDock(qgis_iface.mainWindow())
        dock.model_file.setFilePath(tiny_model)
        dock.stack.setLayer(stack)
        dock.truth.setLayer(truth)
        dock.method.setCurrentIndex(2)  # saliency: fast
        dock.device.setCurrentIndex(1)
        dock.output_folder.setFilePath(str(tmp_path))
        assert dock.run_importance() is True
        wait_for(dock)
        assert dock.last_success, dock.status.text()
        bars = dock.chart.bars()
        assert sorted(b.label for b in bars) == sorted(PAPER)
        assert [b.value for b in bars] == sorted((b.value for b in bars), reverse=True)
        assert sum(b.value for b in bars) == pytest.approx(1.0, abs=1e-3)
        png = dock.save_chart(str(tmp_path / "chart.png"))
        assert open(png, "rb").read(4) == b"\x89PNG"
        assert open(dock.save_table(str(tmp_path / "t.csv"))).read().startswith("rank,method")
        dock.deleteLater()
    finally:
        QgsProject.instance().removeAllMapLayers()


@pytest.mark.end_to_end
def test_dock_cancel_during_a_run_stops_it(provider, qgis_iface, big_scene_layers, tiny_model, tmp_path):
    dock = make_dock(qgis_iface, big_scene_layers, tiny_model)
    out = tmp_path / "out"
    dock.output_folder.setFilePath(str(out))
    dock.device.setCurrentIndex(1)
    assert dock.run_mapping() is True
    wait_until_started(dock)
    dock.cancel()
    wait_for(dock)
    assert dock.last_success is False and dock.status.text() == "Cancelled."
    assert sorted(p.name for p in out.iterdir()) == []  # nothing left, not even the finished stack
    dock.deleteLater()


def test_install_dialog_fits_a_small_screen(qgis_app):
    """The installer's text wraps and its choice list sizes to a short entry: Install and Close stay on a 1366 px
    screen (the long intro line and the longest choice once made the dialog 1885 px wide, buttons off screen)."""
    from rts_fusion.plugin.dependencies import MAPPING_BUILD, make_install_dialog

    dialog = make_install_dialog()
    try:
        assert dialog.minimumSizeHint().width() <= 1000
        assert dialog.sizeHint().width() <= 1366
        assert dialog.minimumSizeHint().height() <= 700
        builds = [dialog.build.itemData(i) for i in range(dialog.build.count())]
        assert builds[0] == "cpu" and builds[-1] == MAPPING_BUILD
        dialog.resize(700, 450)
        assert dialog.width() <= 1366
    finally:
        dialog.deleteLater()
