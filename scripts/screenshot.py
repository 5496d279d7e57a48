"""Screenshots of the real QGIS window with the RTS Fusion dock open on the sample scene (under Xvfb).

Starts Debian's `qgis` in a throw-away profile with this folder as the plugin `rts_fusion`, loads the sample
scene made by `make demo` (demo_output/scene and its cached model), maps slumps from the dock, computes band
importance (saliency) on the training scene, and saves:

    docs/screenshots/dock_map.png         the map tab after a run, results on the canvas
    docs/screenshots/dock_importance.png  the band-importance tab with its chart

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

CODE = r"""
import os, sys
from qgis.core import (QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsProject, QgsRasterLayer,
                       QgsRasterMinMaxOrigin, QgsVectorLayer)
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface, loadPlugin, startPlugin, plugins

DEMO, OUT = {demo!r}, {out!r}

def shot(name):
    QApplication.processEvents()
    iface.mainWindow().grab().save(os.path.join(OUT, name))

def finish():
    QgsProject.instance().setDirty(False)
    os._exit(0)

def importance():
    dock.tabs.setCurrentIndex(1)
    dock.stack.setLayer(train_stack)
    dock.truth.setLayer(train_truth)
    dock.method.setCurrentIndex(2)
    dock.finished.connect(lambda ok: QTimer.singleShot(1500, lambda: (shot("dock_importance.png"), finish())))
    dock.run_importance()

def step_importance(ok):
    dock.finished.disconnect()
    for node in QgsProject.instance().layerTreeRoot().children():
        node.setExpanded(node.name() == "RTS Fusion results")
    iface.mapCanvas().setExtent(layers["optical"].extent())
    iface.mapCanvas().refresh()
    QTimer.singleShot(2000, lambda: (shot("dock_map.png"), importance()))

def start():
    global dock, layers, train_stack, train_truth
    loadPlugin("rts_fusion"); startPlugin("rts_fusion")
    plugin = plugins["rts_fusion"]
    scene = os.path.join(DEMO, "scene")
    layers = {{
        "optical": QgsRasterLayer(os.path.join(scene, "optical.tif"), "optical (Sentinel-2-like, UTM 46N)"),
        "thermal": QgsRasterLayer(os.path.join(scene, "thermal.tif"), "thermal (Landsat ST, UTM 45N)"),
        "dem": QgsRasterLayer(os.path.join(scene, "dem.tif"), "DEM (WGS 84)"),
        "series": QgsRasterLayer(os.path.join(scene, "temperature_series.tif"), "temperature series"),
    }}
    truth = QgsVectorLayer(os.path.join(scene, "slumps.gpkg"), "slump outlines (truth)", "ogr")
    train_stack = QgsRasterLayer(os.path.join(DEMO, "train_scene", "fused_stack.tif"), "training stack")
    train_truth = QgsVectorLayer(os.path.join(DEMO, "train_scene", "slumps.gpkg"), "training slumps", "ogr")
    order = [train_stack, train_truth, truth, layers["series"], layers["dem"], layers["thermal"], layers["optical"]]
    for layer in order:
        QgsProject.instance().addMapLayer(layer)
    optical = layers["optical"]  # true colour: band 3 (red), 2 (green), 1 (blue), stretched
    optical.setRenderer(QgsMultiBandColorRenderer(optical.dataProvider(), 3, 2, 1))
    optical.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut)
    for layer in (train_stack, train_truth, layers["series"], layers["dem"], layers["thermal"]):
        QgsProject.instance().layerTreeRoot().findLayer(layer.id()).setItemVisibilityChecked(False)
    plugin.show_dock(True)
    dock = plugin.dock
    dock.optical.setLayer(layers["optical"])
    dock.thermal.setLayer(layers["thermal"])
    dock.dem.setLayer(layers["dem"])
    dock.series.setLayer(layers["series"])
    dock.model_file.setFilePath(os.path.join(DEMO, "model", "fusion_sa_segformer_tiny.safetensors"))
    dock.output_folder.setFilePath(os.path.join(OUT, "_run"))
    dock.finished.connect(step_importance)
    iface.mapCanvas().setExtent(layers["optical"].extent())
    dock.run_mapping()

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
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        plugins.mkdir()
        (plugins / "rts_fusion").symlink_to(ROOT)
        code = Path(tmp) / "start.py"
        code.write_text(CODE.format(demo=str(demo), out=str(OUT)))
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
            "-screen 0 1600x1000x24",
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
    made = [p for p in (OUT / "dock_map.png", OUT / "dock_importance.png") if p.exists()]
    for p in made:
        print(p)
    if len(made) < 2:
        print(res.stdout[-3000:], res.stderr[-3000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
