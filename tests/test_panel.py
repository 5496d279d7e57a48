"""The panel on a laptop screen: scroll area, defaults, cancel, reruns, chart legend/ticks, unload during a run."""

from __future__ import annotations

import os
import sys
import time

import pytest
from conftest import ensure_provider, wait_for, wait_until_started
from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QCoreApplication, QPoint
from qgis.PyQt.QtGui import QColor, QFontMetrics
from qgis.PyQt.QtWidgets import QMainWindow, QTextEdit
from rts_fusion.plugin.chart import GROUP_COLOURS, SIN45, Bar, BarChartWidget, nice_ticks
from rts_fusion.plugin.layer_roles import guess_layer_roles


# ----- pure logic -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.0, 0.6234, [0.0, 0.2, 0.4, 0.6, 0.8]),
        (-0.037, 0.21, [-0.1, 0.0, 0.1, 0.2, 0.3]),
        (0.0, 1.0, [0.0, 0.25, 0.5, 0.75, 1.0]),
        (0.0, 37.0, [0.0, 10.0, 20.0, 30.0, 40.0]),
    ],
)
def test_nice_ticks_are_round_and_cover_the_data(lo, hi, expected):
    ticks, _decimals = nice_ticks(lo, hi)
    assert ticks == pytest.approx(expected)
    assert ticks[0] <= lo and ticks[-1] >= hi


def test_layer_roles_come_from_names_and_band_descriptions():
    layers = [
        ("srtm_30m", ["Band 1"]),
        ("LC08 scene", ["Coastal (B1)", "Blue (B2)", "Green (B3)", "Red (B4)", "NIR (B5)"]),
        ("monthly air temperature", [f"2020-{m:02d}-15" for m in range(1, 13)]),
        ("LST summer", ["LST"]),
        ("Fused stack", ["BLUE", "GREEN", "RED", "NIR"]),
    ]
    assert guess_layer_roles(layers) == {"dem": 0, "optical": 1, "series": 2, "thermal": 3}
    # Nothing that looks optical: no optical guess (never the DEM), DEM still found.
    assert guess_layer_roles([("dem", ["elevation"]), ("hillshade", ["Band 1"])]) == {"dem": 0}
    assert guess_layer_roles([("Fused stack", ["BLUE", "GREEN", "RED", "NIR"])]) == {}


# ----- the chart ------------------------------------------------------------------------------------------------
def test_chart_has_a_legend_round_ticks_and_whole_labels(qgis_app):
    chart = BarChartWidget()
    chart.resize(360, 300)
    bars = [Bar("PROFILE_CURVATURE", 0.41, 0.0, "auxiliary"), Bar("BLUE", 0.3, 0.0, "optical")]
    bars += [Bar(f"B{i}", 0.01 * i, 0.0, "optical") for i in range(8)]
    chart.set_bars(bars, "Saliency importance", "share of |grad × input|")
    image = chart.grab().toImage()
    assert [label for label, _c in chart.legend_items()] == ["Optical / spectral", "Thermal / terrain"]
    for (_label, colour), swatch in zip(chart.legend_items(), chart.legend_rects()):
        c = swatch.center()
        assert QColor(image.pixel(int(c.x()), int(c.y()))) == colour
    assert chart.tick_labels() == ["0.0", "0.2", "0.4", "0.6"]
    fm = QFontMetrics(chart._small_font())
    left, bottom = chart.margins()
    assert bottom >= fm.horizontalAdvance("PROFILE_CURVATURE") * SIN45  # the longest label fits below the axis
    assert left >= max(fm.horizontalAdvance(t) for t in chart.tick_labels())
    assert GROUP_COLOURS["optical"] != GROUP_COLOURS["auxiliary"]


# ----- the dock -------------------------------------------------------------------------------------------------
def new_dock(qgis_iface, model=None):
    from rts_fusion.plugin.dock import RtsFusionDock

    dock = RtsFusionDock(qgis_iface.mainWindow())
    if model:
        dock.model_file.setFilePath(model)
    dock.device.setCurrentIndex(1)
    dock.worker_python = sys.executable  # the test venv's Python stands for QGIS's own
    return dock


def test_dock_fits_a_laptop_screen_with_run_and_cancel_visible(qgis_iface):
    from rts_fusion.plugin.dock import RtsFusionDock, dock_area

    window = QMainWindow()
    window.setCentralWidget(QTextEdit())
    dock = RtsFusionDock(window)
    window.addDockWidget(dock_area(), dock)
    window.resize(1366, 700)
    window.show()
    QCoreApplication.processEvents()
    assert window.minimumSizeHint().height() < 600  # the window can be as short as a 1366×768 screen allows
    dock.resize(360, 420)
    window.resize(1366, 480)
    QCoreApplication.processEvents()
    for widget in (dock.run_button, dock.progress, dock.cancel_button):
        assert widget.isVisible()
        bottom = widget.mapTo(dock, QPoint(0, widget.height())).y()
        assert bottom <= dock.height(), widget  # below the scrolling settings, inside the panel
    assert dock.scroll.verticalScrollBar().maximum() > 0  # the settings scroll instead of stretching the window
    assert dock.scroll.widget().minimumSizeHint().width() <= 320  # and shrink to a narrow panel, no clipping
    dock.tabs.setCurrentIndex(1)
    assert dock.run_button.text() == "Compute band importance"
    dock.method.setCurrentIndex(2)  # saliency: no permutations
    assert not dock.repeats.isEnabled()
    dock.method.setCurrentIndex(1)
    assert dock.repeats.isEnabled()
    window.close()
    dock.shutdown()
    dock.deleteLater()


def test_dock_picks_layers_by_name_and_never_maps_a_dem_as_optical(qgis_iface, scene_layers):
    dock = new_dock(qgis_iface)
    assert dock.optical.currentLayer() is scene_layers["optical"]
    assert dock.dem.currentLayer() is scene_layers["dem"]
    assert dock.thermal.currentLayer() is scene_layers["thermal"]
    assert dock.series.currentLayer() is scene_layers["series"]
    assert dock.mapped_bands() == {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 6}
    dock.optical.setLayer(scene_layers["dem"])  # a user's slip: the DEM as the optical image
    assert dock.mapped_bands() == {}
    dock.shutdown()
    dock.deleteLater()


@pytest.mark.end_to_end
def test_cancel_says_cancelled_resets_progress_and_removes_the_temporary_folder(
    provider, qgis_iface, big_scene_layers, tiny_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # pick up TMPDIR
    dock = new_dock(qgis_iface, tiny_model)
    assert dock.output_folder.filePath() == ""  # a temporary folder
    assert dock.run_mapping() is True
    made = [p for p in (tmp_path / "tmp").iterdir() if p.name.startswith("rts_fusion_")]
    assert len(made) == 1
    wait_until_started(dock)
    dock.cancel()
    wait_for(dock)
    assert dock.status.text() == "Cancelled." and dock.last_success is False
    assert dock.progress.value() == 0 and dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()
    assert not made[0].exists()
    dock.shutdown()
    dock.deleteLater()


@pytest.mark.end_to_end
def test_rerun_into_the_same_folder_replaces_the_layers(provider, qgis_iface, scene_layers, tiny_model, tmp_path):
    dock = new_dock(qgis_iface, tiny_model)
    dock.output_folder.setFilePath(str(tmp_path))
    assert dock.in_worker.isChecked()  # the worker process is the default
    for _ in range(2):
        assert dock.run_mapping() is True
        assert type(dock.task).__name__ == "MapSlumpsWorkerTask"
        wait_for(dock)
        assert dock.last_success, dock.status.text()
    group = QgsProject.instance().layerTreeRoot().findGroup("RTS Fusion results")
    names = sorted(node.layer().name() for node in group.findLayers())
    assert names == ["Fused stack", "Slump mask", "Slump probability", "Thaw slumps"]
    assert len(QgsProject.instance().mapLayers()) == len(scene_layers) + 4
    assert "replacing 4 layers of the earlier run" in dock.status.text()
    dock.shutdown()
    dock.deleteLater()


@pytest.mark.end_to_end
def test_closing_the_panel_keeps_the_run_going(provider, qgis_iface, scene_layers, tiny_model, tmp_path):
    dock = new_dock(qgis_iface, tiny_model)
    dock.output_folder.setFilePath(str(tmp_path))
    dock.show()
    assert dock.run_mapping() is True
    dock.close()
    assert "background" in dock.status.text()
    wait_for(dock)
    assert dock.last_success and (tmp_path / "thaw_slumps.gpkg").exists()
    dock.shutdown()
    dock.deleteLater()


@pytest.mark.end_to_end
def test_unloading_the_plugin_during_a_run_cancels_it_cleanly(
    qgis_iface, qgis_processing, big_scene_layers, tiny_model, tmp_path
):
    import rts_fusion

    registry = QgsApplication.processingRegistry()
    earlier = registry.providerById("rtsfusion")
    if earlier is not None:
        registry.removeProvider(earlier)
    errors = []
    hook = sys.excepthook
    sys.excepthook = lambda *exc: errors.append(exc[1])
    try:
        plugin = rts_fusion.classFactory(qgis_iface)
        plugin.initGui()
        plugin.show_dock(True)
        dock = plugin.dock
        dock.model_file.setFilePath(tiny_model)
        dock.device.setCurrentIndex(1)
        dock.worker_python = sys.executable
        out = tmp_path / "out"
        dock.output_folder.setFilePath(str(out))
        assert dock.run_mapping() is True
        wait_until_started(dock)
        plugin.unload()
        assert plugin.dock is None
        t0 = time.time()
        while QgsApplication.taskManager().countActiveTasks() and time.time() - t0 < 120:
            QCoreApplication.processEvents()
            time.sleep(0.02)
        for _ in range(20):
            QCoreApplication.processEvents()
        assert QgsApplication.taskManager().countActiveTasks() == 0
        assert errors == []  # no "wrapped C/C++ object has been deleted" from a late signal
        assert not (out / "thaw_slumps.gpkg").exists()
    finally:
        sys.excepthook = hook
        ensure_provider()


def test_help_page_ships_and_is_what_help_opens():
    from rts_fusion.plugin.dock import HELP_PAGE

    text = open(HELP_PAGE, encoding="utf-8").read()
    assert os.path.dirname(HELP_PAGE).endswith(os.path.join("resources", "help"))
    assert "Raster → RTS Fusion" in text and "landsatbands" in text and "train_detect_evaluate.model3" in text


def test_landsat_band_files_become_the_optical_layer(qgis_iface, tmp_path):
    from test_landsat import _scene

    paths = _scene(str(tmp_path), "LC08_L2SP_001002_20200101_20200102_02_T1", [2, 3, 4, 5, 6, 7, 10])
    dock = new_dock(qgis_iface)
    dock.output_folder.setFilePath(str(tmp_path / "out"))
    try:
        layer = dock.load_landsat_bands(paths)
        assert layer is not None and layer.isValid() and dock.optical.currentLayer() is layer
        assert layer.source().endswith("LC08_L2SP_001002_20200101_20200102_02_T1_optical.vrt")
        assert dock.sensor.currentData() == "landsat8"
        assert dock.mapped_bands() == {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 6}
        assert "surface reflectance" in dock.status.text() and "B10" in dock.status.text()
        assert dock.load_landsat_bands([str(tmp_path / "notes.TIF")]) is None
        assert "does not exist" in dock.status.text()
    finally:
        dock.shutdown()
        dock.deleteLater()
        QgsProject.instance().removeAllMapLayers()
