"""Screenshots of the real QGIS window (1366×768, under Xvfb) with the RTS Fusion panel and the modeller.

Starts Debian's `qgis` in a throw-away profile with this folder as the plugin `rts_fusion`, loads the sample
scene made by `make demo` (demo_output/scene and its cached model) beside the Processing toolbox, lets the panel
propose the layers itself, and saves:

    docs/screenshots/panel_before.png   the panel with its proposed layers and the model's card, before a run
    docs/screenshots/panel_after.png    after the run: status, results group and polygons on the map
    docs/screenshots/modeller.png       resources/models/train_detect_evaluate.model3 in the Graphical Modeler

    .venv/bin/python scripts/screenshot.py   (after `make demo`)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
SHOTS = ("panel_before.png", "panel_after.png", "modeller.png")
WIDTH, HEIGHT = 1366, 768

CODE = r"""
import os, sys
from qgis.core import (QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsProject, QgsRasterLayer,
                       QgsRasterMinMaxOrigin, QgsVectorLayer)
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QApplication, QDockWidget
from qgis.utils import iface, loadPlugin, startPlugin, plugins

DEMO, OUT, MODEL3, W, H = {demo!r}, {out!r}, {model3!r}, {width}, {height}

def shot(widget, name):
    QApplication.processEvents()
    widget.grab().save(os.path.join(OUT, name))

def finish():
    QgsProject.instance().setDirty(False)
    os._exit(0)

def modeller():
    from processing.modeler.ModelerDialog import ModelerDialog
    dlg = ModelerDialog.create()
    dlg.loadModel(MODEL3)
    dlg.setGeometry(0, 0, W, H)
    dlg.show()
    QApplication.processEvents()
    dlg.view().fitInView(dlg.view().scene().itemsBoundingRect().adjusted(-20, -20, 20, 20), 1)
    QTimer.singleShot(1500, lambda: (shot(dlg, "modeller.png"), finish()))

def after(ok):
    dock.finished.disconnect()
    for node in QgsProject.instance().layerTreeRoot().children():
        node.setExpanded(node.name() == "RTS Fusion results")
    for node in QgsProject.instance().layerTreeRoot().findLayers():
        node.setExpanded(False)
    iface.mapCanvas().setExtent(optical.extent())
    iface.mapCanvas().refresh()
    QTimer.singleShot(2500, lambda: (shot(iface.mainWindow(), "panel_after.png"), modeller()))

def run():
    shot(iface.mainWindow(), "panel_before.png")
    dock.finished.connect(after)
    dock.run_mapping()

def start():
    global dock, optical
    window = iface.mainWindow()
    window.setGeometry(0, 0, W, H)
    loadPlugin("rts_fusion"); startPlugin("rts_fusion")
    plugin = plugins["rts_fusion"]
    scene = os.path.join(DEMO, "scene")
    layers = [
        QgsRasterLayer(os.path.join(scene, "temperature_series.tif"), "temperature_series (monthly, °C)"),
        QgsRasterLayer(os.path.join(scene, "dem.tif"), "dem (WGS 84)"),
        QgsRasterLayer(os.path.join(scene, "thermal.tif"), "thermal LST (Landsat ST, UTM 45N)"),
        QgsRasterLayer(os.path.join(scene, "optical.tif"), "optical (Sentinel-2-like, UTM 46N)"),
        QgsVectorLayer(os.path.join(scene, "slumps.gpkg"), "slump outlines (truth)", "ogr"),
    ]
    optical = layers[3]
    optical.setRenderer(QgsMultiBandColorRenderer(optical.dataProvider(), 3, 2, 1))
    optical.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut)
    toolbox = window.findChild(QDockWidget, "ProcessingToolbox")
    if toolbox is not None:
        toolbox.show()
        search = getattr(toolbox, "searchBox", None)
        if search is not None:
            search.setText("rtsfusion")
    plugin.show_dock(True)
    dock = plugin.dock  # opened before the layers arrive: it proposes them as they are added
    for layer in layers:
        QgsProject.instance().addMapLayer(layer)
    for layer in layers:
        node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
        node.setExpanded(False)
        node.setItemVisibilityChecked(layer in layers[3:])
    browser = window.findChild(QDockWidget, "Browser")
    if browser is not None:
        browser.hide()
    if toolbox is not None:  # the toolbox above, the panel below it: most of the height for the panel
        window.resizeDocks([toolbox, dock], [220, 480], Qt.Orientation.Vertical)
    window.resizeDocks([dock], [440], Qt.Orientation.Horizontal)
    dock.model_file.setFilePath(os.path.join(DEMO, "model", "fusion_sa_segformer_tiny.safetensors"))
    dock.output_folder.setFilePath(os.path.join(OUT, "_run"))
    iface.mapCanvas().setExtent(optical.extent())
    window.setGeometry(0, 0, W, H)
    QTimer.singleShot(3000, run)

QTimer.singleShot(3000, start)
QTimer.singleShot(600000, finish)  # never hang
"""


def main() -> int:
    """Run QGIS under Xvfb and write the screenshots."""
    demo = ROOT / "demo_output"
    if not (demo / "model" / "fusion_sa_segformer_tiny.safetensors").exists():
        print("Run `make demo` first: the screenshots use its sample scene and model.", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    for name in SHOTS:
        (OUT / name).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        plugins.mkdir()
        (plugins / "rts_fusion").symlink_to(ROOT)
        code = Path(tmp) / "start.py"
        model3 = str(ROOT / "resources" / "models" / "train_detect_evaluate.model3")
        code.write_text(CODE.format(demo=str(demo), out=str(OUT), model3=model3, width=WIDTH, height=HEIGHT))
        env = dict(os.environ)
        env.pop("QT_QPA_PLATFORM", None)  # a real X display (Xvfb), not offscreen
        env.update(
            QGIS_PLUGINPATH=str(plugins),
            PYTHONPATH=os.pathsep.join(p for p in (sysconfig.get_paths()["purelib"], env.get("PYTHONPATH")) if p),
        )
        cmd = [
            shutil.which("xvfb-run") or "xvfb-run",
            "-a",
            "-s",
            f"-screen 0 {WIDTH}x{HEIGHT}x24",
            "qgis",
            "--nologo",
            "--noversioncheck",
            "--profiles-path",
            str(Path(tmp) / "profiles"),
            "--code",
            str(code),
        ]
        res = subprocess.run(cmd, env=env, timeout=900, capture_output=True, text=True)
    shutil.rmtree(OUT / "_run", ignore_errors=True)
    made = [OUT / name for name in SHOTS if (OUT / name).exists()]
    for p in made:
        print(p)
    if len(made) < len(SHOTS):
        print(res.stdout[-3000:], res.stderr[-3000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
