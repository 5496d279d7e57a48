"""The RTS Fusion dock: pick layers and a model, map thaw slumps in the background, inspect band importance.

The dock builds parameters (dock_logic) and runs the Processing algorithms `rtsfusion:mapslumps` and
`rtsfusion:bandimportance` in a QgsProcessingAlgRunnerTask; it holds no processing logic itself.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from qgis.core import (
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox, QgsRasterBandComboBox
from qgis.PyQt.QtCore import Qt, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..core.spectral import SENSORS
from ..core.stack import OPTICAL_KEYS
from ..processing_provider.band_importance import BandImportanceAlgorithm as _Imp
from ..processing_provider.map_slumps import MapSlumpsAlgorithm as _Map
from .chart import Bar, BarChartWidget
from .dock_logic import (
    SENSOR_KEYS,
    guess_band_mapping,
    guess_sensor,
    importance_parameters,
    map_parameters,
    read_importance_csv,
    unmet_needs,
)
from .layer_roles import guess_layer_roles

PLUGIN_DIR = os.path.dirname(os.path.dirname(__file__))
STYLES = os.path.join(PLUGIN_DIR, "resources", "styles")
HELP_PAGE = os.path.join(PLUGIN_DIR, "resources", "help", "index.html")
INSTALL_HINT = "Install them from the menu Raster → RTS Fusion → Install deep-learning dependencies…"
# Runs still going when their dock was unloaded: kept referenced (the task uses the context) until they end.
_ORPHANED_RUNS: list[tuple] = []
RESULT_GROUP = "RTS Fusion results"
RESULT_STYLES = (  # mapslumps's outputs: layer name, style
    (_Map.POLYGONS, "Thaw slumps", "slumps"),
    (_Map.MASK, "Slump mask", "mask"),
    (_Map.PROBABILITY, "Slump probability", "probability"),
    (_Map.STACK, "Fused stack", None),
)


def cuda_device_name() -> str | None:
    """The first CUDA device's name, None without torch or without a GPU."""
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - torch missing or broken: no CUDA choice
        return None


class RtsFusionDock(QgsDockWidget):
    """Dock widget with a 'Map slumps' tab and a 'Band importance' tab."""

    finished = pyqtSignal(bool)  # a background run ended (successfully or not)

    def __init__(self, parent=None) -> None:
        super().__init__("RTS Fusion", parent)
        self.setObjectName("RtsFusionDock")
        self.task: QgsProcessingAlgRunnerTask | None = None
        self.feedback: QgsProcessingFeedback | None = None
        self.context: QgsProcessingContext | None = None
        self.last_results: dict = {}
        self.last_success: bool | None = None
        self.card = None
        self._temp_folder: str | None = None  # a folder this dock made for a run's outputs
        body = QWidget()
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(4, 4, 4, 4)

        model_box = QGroupBox("Model package")
        model_layout = QVBoxLayout(model_box)
        self.model_file = QgsFileWidget()
        self.model_file.setFilter("RTS Fusion model (*.safetensors *.onnx)")
        self.model_file.fileChanged.connect(self.model_changed)
        model_layout.addWidget(self.model_file)
        self.card_view = QTextBrowser()
        self.card_view.setMaximumHeight(110)
        self.card_view.setPlaceholderText("Choose a model package to see its bands, inputs, resolution and scores.")
        model_layout.addWidget(self.card_view)
        layout.addWidget(model_box)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._map_tab(), "Map slumps")
        self.tabs.addTab(self._importance_tab(), "Band importance")
        self.tabs.currentChanged.connect(self._tab_changed)
        layout.addWidget(self.tabs)

        # The settings scroll; Run, progress, Cancel and the status stay visible below them at any height.
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.scroll.setWidget(content)
        self.scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        outer = QVBoxLayout(body)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll, 1)
        footer = QWidget()
        foot = QVBoxLayout(footer)
        foot.setContentsMargins(4, 2, 4, 4)
        run_row = QHBoxLayout()
        self.run_button = QPushButton()
        self.run_button.clicked.connect(self.run_current)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.help_button = QPushButton("Help")
        self.help_button.setToolTip("Open the RTS Fusion user guide")
        self.help_button.clicked.connect(self.open_help)
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.progress, 1)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.help_button)
        foot.addLayout(run_row)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        foot.addWidget(self.status)
        outer.addWidget(footer)
        self.setWidget(body)
        self.setMinimumHeight(200)
        self._tab_changed(0)
        project = QgsProject.instance()
        project.layersAdded.connect(self._layers_added)
        self.apply_layer_roles()
        self.optical_changed()

    # ----- tabs -------------------------------------------------------------------------------------------------
    def _raster_combo(self, optional: bool) -> QgsMapLayerComboBox:
        combo = QgsMapLayerComboBox()
        _narrow(combo)
        combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        combo.setAllowEmptyLayer(optional)
        if optional:
            combo.setLayer(None)
        return combo

    def _map_tab(self) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # labels above their fields when narrow
        self.optical = self._raster_combo(True)  # empty until a layer looks optical or the user picks one
        self.thermal = self._raster_combo(True)
        self.dem = self._raster_combo(True)
        self.series = self._raster_combo(True)
        form.addRow("Optical image", self.optical)
        self.landsat_button = QPushButton("From Landsat band files…")
        self.landsat_button.setToolTip(
            "Use a Landsat scene's separate band files (…_B1.TIF … _B7.TIF, with its _MTL.txt) as the optical image"
        )
        self.landsat_button.clicked.connect(self.choose_landsat_bands)
        form.addRow("", self.landsat_button)
        form.addRow("Thermal layer", self.thermal)
        form.addRow("DEM", self.dem)
        form.addRow("Temperature series (FTI)", self.series)
        self.sensor = QComboBox()
        _narrow(self.sensor)
        for key in SENSOR_KEYS:
            self.sensor.addItem(SENSORS[key], key)
        form.addRow("Optical sensor", self.sensor)
        self.band_combos: dict[str, QgsRasterBandComboBox] = {}
        for key in OPTICAL_KEYS:
            combo = QgsRasterBandComboBox()
            _narrow(combo)
            combo.setShowNotSetOption(True)
            self.band_combos[key] = combo
            form.addRow(f"{key.upper() if key.startswith(('nir', 'swir')) else key.capitalize()} band", combo)
        self.device = QComboBox()
        _narrow(self.device)
        self.device.addItem("Auto (CUDA if present)", 0)
        self.device.addItem("CPU", 1)
        gpu = cuda_device_name()
        self.device.addItem(f"CUDA: {gpu}" if gpu else "CUDA (no GPU found)", 2)
        self.device.model().item(2).setEnabled(gpu is not None)
        form.addRow("Device", self.device)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setSpecialValueText("model's")
        self.threshold.setValue(0.0)
        form.addRow("Threshold", self.threshold)
        self.min_area = QDoubleSpinBox()
        self.min_area.setRange(0, 1e9)
        self.min_area.setValue(1000)
        self.min_area.setSuffix(" m²")
        form.addRow("Minimum area", self.min_area)
        self.in_worker = QCheckBox("Separate process")
        self.in_worker.setToolTip(
            "Map in a separate QGIS Python process: a crash or out-of-memory in PyTorch cannot close QGIS"
        )
        self.in_worker.setChecked(True)
        form.addRow("Run", self.in_worker)
        self.worker_python: str | None = None  # QGIS's own Python (found by the worker task) unless set
        self.output_folder = QgsFileWidget()
        self.output_folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output_folder.lineEdit().setPlaceholderText("a new temporary folder")
        form.addRow("Output folder", self.output_folder)
        self.needs_label = QLabel("")
        self.needs_label.setWordWrap(True)
        self.needs_label.setStyleSheet("color: #b35900")
        form.addRow(self.needs_label)
        self.optical.layerChanged.connect(self.optical_changed)
        for w in (self.thermal, self.dem, self.series):
            w.layerChanged.connect(self.check_needs)
        self.sensor.currentIndexChanged.connect(self.check_needs)
        for combo in self.band_combos.values():
            combo.bandChanged.connect(self.check_needs)
        return tab

    def _importance_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.stack = self._raster_combo(False)
        self.truth = QgsMapLayerComboBox()
        _narrow(self.truth)
        self.truth.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.method = QComboBox()
        _narrow(self.method)
        self.method.addItems(["Saliency and permutation", "Permutation", "Saliency"])
        self.method.setCurrentIndex(2)
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 50)
        self.repeats.setValue(3)
        form.addRow("Fused stack", self.stack)
        form.addRow("Ground-truth slumps", self.truth)
        form.addRow("Method", self.method)
        form.addRow("Permutations", self.repeats)
        self.method.currentIndexChanged.connect(self._method_changed)
        self._method_changed()
        layout.addLayout(form)
        self.chart = BarChartWidget()
        layout.addWidget(self.chart, 1)
        self.chart_method = QComboBox()
        _narrow(self.chart_method)
        self.chart_method.currentIndexChanged.connect(self.show_importance)
        show = QHBoxLayout()
        show.addWidget(QLabel("Show"))
        show.addWidget(self.chart_method, 1)
        layout.addLayout(show)
        export = QHBoxLayout()
        self.save_chart_button = QPushButton("Save chart…")
        self.save_chart_button.clicked.connect(self.save_chart)
        self.save_table_button = QPushButton("Save table…")
        self.save_table_button.clicked.connect(self.save_table)
        export.addWidget(self.save_chart_button)
        export.addWidget(self.save_table_button)
        layout.addLayout(export)
        self.importance_rows: list[dict] = []
        self.importance_csv: str | None = None
        return tab

    # ----- state from the widgets -------------------------------------------------------------------------------
    def _tab_changed(self, index: int) -> None:
        self.run_button.setText("Map thaw slumps" if index == 0 else "Compute band importance")

    def _method_changed(self, *_args) -> None:
        """Permutations only apply to the permutation methods."""
        self.repeats.setEnabled(self.method.currentIndex() in (0, 1))

    def _layers_added(self, *_args) -> None:
        self.apply_layer_roles()

    def apply_layer_roles(self) -> dict[str, object]:
        """Fill the empty layer choices from the project's rasters by layer name and band names.

        A choice already made is never changed; a role no layer looks like stays empty (the optical image is
        never "the first raster", which could be a DEM).
        """
        combos = {"optical": self.optical, "thermal": self.thermal, "dem": self.dem, "series": self.series}
        layers = [self.optical.layer(i) for i in range(self.optical.count())]
        layers = [layer for layer in layers if isinstance(layer, QgsRasterLayer)]
        roles = guess_layer_roles([(layer.name(), _band_descriptions(layer)) for layer in layers])
        taken = {combo.currentLayer() for combo in combos.values()} - {None}
        chosen = {}
        for role, combo in combos.items():
            layer = layers[roles[role]] if role in roles else None
            if combo.currentLayer() is None and layer is not None and layer not in taken:
                combo.setLayer(layer)
                taken.add(layer)
                chosen[role] = layer
        return chosen

    def optical_changed(self, *_args) -> None:
        """Point the band pickers at the optical layer and pre-fill them from its band names."""
        layer = self.optical.currentLayer()
        for combo in self.band_combos.values():
            combo.setLayer(layer)
        if isinstance(layer, QgsRasterLayer):
            descriptions = _band_descriptions(layer)
            sensor = guess_sensor(descriptions)
            if sensor:
                self.sensor.setCurrentIndex(SENSOR_KEYS.index(sensor))
            # A one- or two-band raster is no multispectral image: map nothing rather than "Blue = elevation".
            mapping = guess_band_mapping(descriptions, self.sensor.currentData()) if layer.bandCount() >= 3 else {}
            for key, combo in self.band_combos.items():
                combo.setBand(mapping.get(key, -1))
        self.check_needs()

    def choose_landsat_bands(self) -> None:
        """Ask for a Landsat scene's band files and use them as the optical image."""
        paths, _filter = QFileDialog.getOpenFileNames(
            self, "Landsat band files (B1…B7, with the scene's _MTL.txt beside them)", "", "GeoTIFF (*.TIF *.tif)"
        )
        if paths:
            self.load_landsat_bands(paths)

    def load_landsat_bands(self, paths: list[str]) -> QgsRasterLayer | None:
        """Stack band files into an optical VRT (output folder, else a temporary one), add it and select it."""
        from ..core.errors import RtsFusionError
        from ..core.landsat import build_landsat_optical

        folder = self.output_folder.filePath() or tempfile.mkdtemp(prefix="rts_fusion_landsat_")
        name = re.split(r"_(?:SR_)?B\d", os.path.basename(paths[0]))[0] or "landsat"
        try:
            result = build_landsat_optical(paths, os.path.join(folder, f"{name}_optical.vrt"))
        except RtsFusionError as exc:
            self.status.setText(f"Landsat band files: {exc}")
            return None
        layer = QgsRasterLayer(result.path, f"{name} optical ({result.calibration})")
        QgsProject.instance().addMapLayer(layer)
        self.sensor.setCurrentIndex(SENSOR_KEYS.index(result.sensor))
        self.optical.setLayer(layer)
        notes = [f"Optical image: {len(result.bands)} Landsat bands as {result.calibration}."]
        if not result.calibrated:
            notes.append("No reflectance coefficients in an MTL: the values are digital numbers, not reflectance.")
        notes += [f"Left out {s}." for s in result.skipped]
        self.status.setText(" ".join(notes))
        return layer

    def mapped_bands(self) -> dict[str, int]:
        """Optical key → 1-based band, for the bands set."""
        return {k: c.currentBand() for k, c in self.band_combos.items() if c.currentBand() > 0}

    def model_changed(self, *_args) -> None:
        """Read the chosen package's card and show it."""
        path = self.model_file.filePath()
        self.card = None
        if not path:
            self.card_view.clear()
        else:
            try:
                from ..models.card import format_card
                from ..models.package import read_card

                self.card = read_card(path)
                self.card_view.setPlainText(format_card(self.card))
            except ImportError:
                self.card_view.setPlainText(
                    "Reading model packages needs safetensors (PyTorch to map with them); an exported .onnx model "
                    f"needs only onnxruntime. {INSTALL_HINT}"
                )
            except ValueError as exc:
                self.card_view.setPlainText(f"Not a usable model package: {exc}")
        self.check_needs()

    def check_needs(self, *_args) -> list[str]:
        """Warn when the chosen layers cannot supply the model's bands; returns the problems."""
        problems: list[str] = []
        if self.card is not None and self.optical.currentLayer() is not None:
            problems = unmet_needs(
                self.card.bands,
                self.thermal.currentLayer() is not None,
                self.dem.currentLayer() is not None,
                self.series.currentLayer() is not None,
                self.mapped_bands(),
                self.sensor.currentData(),
            )
        self.needs_label.setText("\n".join(problems))
        return problems

    def _folder(self) -> str:
        folder = self.output_folder.filePath()
        if not folder:
            folder = self._temp_folder = tempfile.mkdtemp(prefix="rts_fusion_")
        os.makedirs(folder, exist_ok=True)
        return folder

    # ----- running ----------------------------------------------------------------------------------------------
    def run_current(self) -> bool:
        """Run what the visible tab is for."""
        return self.run_mapping() if self.tabs.currentIndex() == 0 else self.run_importance()

    def _start(self, algorithm_id: str, params: dict, on_done) -> bool:
        if self.task is not None:
            self.status.setText("A run is in progress.")
            return False
        alg = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        if alg is None:
            self.status.setText(f"The Processing algorithm {algorithm_id} is not available; is the plugin enabled?")
            return False
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = QgsProcessingFeedback()
        self.feedback.progressChanged.connect(self._progress)
        if algorithm_id == "rtsfusion:mapslumps" and self.in_worker.isChecked():
            # A separate QGIS Python process: a crash or out-of-memory in torch cannot take QGIS down.
            from .worker_task import MapSlumpsWorkerTask

            try:
                self.task = MapSlumpsWorkerTask(params, self.context, self.feedback, python=self.worker_python)
            except QgsProcessingException as exc:
                self.status.setText(str(exc))
                self.context = self.feedback = None
                return False
        else:
            self.task = QgsProcessingAlgRunnerTask(alg, params, self.context, self.feedback)
        self.task.executed.connect(lambda ok, results: self._done(ok, results, on_done))
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self.run_button.setEnabled(False)
        self.status.setText(f"Running {alg.displayName()}…")
        self.last_success = None
        QgsApplication.taskManager().addTask(self.task)
        return True

    def _progress(self, value: float) -> None:
        if self.task is not None:
            self.progress.setValue(int(value))

    def _done(self, ok: bool, results: dict, on_done) -> None:
        canceled = self.feedback is not None and self.feedback.isCanceled()
        task, self.task = self.task, None
        self.cancel_button.setEnabled(False)
        self.run_button.setEnabled(True)
        self.last_results = dict(results or {})
        self.last_success = bool(ok) and not canceled
        if not self.last_success:
            self.progress.setValue(0)
            self._remove_temp_folder()
        if canceled:
            self.status.setText("Cancelled.")
        elif not ok:
            why = getattr(task, "error", "")  # the worker process says why; the in-process run logs it
            self.status.setText(
                f"The run failed: {why}"
                if why
                else "The run failed; see the Processing log (View → Panels → Log Messages) for why."
            )
        else:
            self._temp_folder = None  # it holds the results now
            on_done(self.last_results)
        self.finished.emit(self.last_success)

    def _remove_temp_folder(self) -> None:
        if self._temp_folder:
            shutil.rmtree(self._temp_folder, ignore_errors=True)
            self._temp_folder = None

    def cancel(self) -> None:
        """Ask the running algorithm to stop (it removes its partial outputs)."""
        if self.feedback is not None and self.task is not None:
            self.feedback.cancel()
            self.status.setText("Cancelling…")

    def shutdown(self) -> None:
        """Cancel a run and detach it from this dock (the plugin is unloading; the dock is about to go)."""
        project = QgsProject.instance()
        project.layersAdded.disconnect(self._layers_added)
        if self.task is None:
            return
        task, context, feedback, folder = self.task, self.context, self.feedback, self._temp_folder
        task.executed.disconnect()
        feedback.progressChanged.disconnect()
        feedback.cancel()
        entry = (task, context, feedback)
        _ORPHANED_RUNS.append(entry)

        def release(*_args) -> None:
            if entry in _ORPHANED_RUNS:
                _ORPHANED_RUNS.remove(entry)
            if folder:
                shutil.rmtree(folder, ignore_errors=True)

        task.taskCompleted.connect(release)
        task.taskTerminated.connect(release)
        self.task = self.feedback = self.context = None

    def open_help(self) -> bool:
        """Open the user guide shipped with the plugin in the system's browser."""
        return QDesktopServices.openUrl(QUrl.fromLocalFile(HELP_PAGE))

    def run_mapping(self) -> bool:
        """Start rtsfusion:mapslumps with the dock's choices; returns whether it started."""
        optical = self.optical.currentLayer()
        model = self.model_file.filePath()
        if optical is None or not model:
            self.status.setText("Choose an optical layer and a model package first.")
            return False
        problems = self.check_needs()
        if problems:
            self.status.setText("The chosen layers cannot supply the model's bands; see the warning above.")
            return False
        params = map_parameters(
            model,
            optical,
            self.thermal.currentLayer(),
            self.dem.currentLayer(),
            self.series.currentLayer(),
            self.mapped_bands(),
            self.sensor.currentData(),
            self.device.currentData(),
            self.threshold.value() or None,
            self.min_area.value(),
            self._folder(),
        )
        return self._start("rtsfusion:mapslumps", params, self._add_results)

    def _add_results(self, results: dict) -> None:
        project = QgsProject.instance()
        paths = {_normalised(results[key]) for key, _name, _style in RESULT_STYLES if results.get(key)}
        # A rerun into the same folder overwrote these files: drop the layers of the earlier run.
        stale = [lid for lid, layer in project.mapLayers().items() if _normalised(layer.source()) in paths]
        project.removeMapLayers(stale)
        root = project.layerTreeRoot()
        group = root.findGroup(RESULT_GROUP) or root.insertGroup(0, RESULT_GROUP)
        added = []
        for key, name, style in RESULT_STYLES:
            path = results.get(key)
            if not path:
                continue
            layer = QgsVectorLayer(path, name, "ogr") if key == _Map.POLYGONS else QgsRasterLayer(path, name)
            if not layer.isValid():
                continue
            if style:
                layer.loadNamedStyle(os.path.join(STYLES, f"{style}.qml"))
            QgsProject.instance().addMapLayer(layer, False)
            group.addLayer(layer)
            added.append(layer)
        for layer in added[1:]:
            node = group.findLayer(layer.id())
            if node is not None and layer.name() == "Fused stack":
                node.setItemVisibilityChecked(False)
        count = results.get(_Map.COUNT)
        replaced = f" (replacing {len(stale)} layers of the earlier run)" if stale else ""
        self.status.setText(f"{count} thaw slumps mapped; layers added to '{RESULT_GROUP}'{replaced}.")

    def run_importance(self) -> bool:
        """Start rtsfusion:bandimportance; the chart shows the result."""
        stack, truth, model = self.stack.currentLayer(), self.truth.currentLayer(), self.model_file.filePath()
        if stack is None or truth is None or not model:
            self.status.setText("Choose a model package, a fused stack and ground-truth polygons first.")
            return False
        params = importance_parameters(
            model,
            stack,
            truth,
            self.method.currentIndex(),
            self.repeats.value(),
            self.device.currentData(),
            self._folder(),
        )
        return self._start("rtsfusion:bandimportance", params, self._importance_done)

    def _importance_done(self, results: dict) -> None:
        self.importance_csv = results.get(_Imp.CSV)
        rows = read_importance_csv(self.importance_csv) if self.importance_csv else []
        self.set_importance(rows)
        self.status.setText(
            f"Band importance: most important band {results.get(_Imp.TOP_BAND)}; unshuffled F1 "
            f"{results.get(_Imp.BASELINE_F1, float('nan')):.3f}."
        )

    def set_importance(self, rows: list[dict]) -> None:
        """Show importance rows (as written by the algorithm) in the chart."""
        self.importance_rows = rows
        self.chart_method.blockSignals(True)
        self.chart_method.clear()
        for method in ("permutation", "saliency"):
            for kind in ("band", "group"):
                if any(r["method"] == method and r["kind"] == kind for r in rows):
                    self.chart_method.addItem(f"{method.capitalize()}, per {kind}", (method, kind))
        self.chart_method.blockSignals(False)
        self.show_importance()

    def show_importance(self, *_args) -> None:
        """Draw the chosen method's rows."""
        choice = self.chart_method.currentData()
        if not choice:
            self.chart.set_bars([])
            return
        method, kind = choice
        rows = [r for r in self.importance_rows if r["method"] == method and r["kind"] == kind]
        bars = [Bar(r["band"], r["importance"], r.get("std") or 0.0, r["group"]) for r in rows]
        ylabel = "F1 drop" if method == "permutation" else "share of |grad × input|"
        self.chart.set_bars(bars, f"{method.capitalize()} importance", ylabel)

    def save_chart(self, path: str | None = None) -> str | None:
        """Save the chart as PNG (asks for a path when none is given)."""
        path = path or QFileDialog.getSaveFileName(self, "Save chart", "band_importance.png", "PNG (*.png)")[0]
        if path:
            self.chart.grab().save(path, "PNG")
        return path or None

    def save_table(self, path: str | None = None) -> str | None:
        """Copy the importance CSV (asks for a path when none is given)."""
        if not self.importance_csv:
            self.status.setText("Compute band importance first.")
            return None
        path = path or QFileDialog.getSaveFileName(self, "Save table", "band_importance.csv", "CSV (*.csv)")[0]
        if path:
            import shutil

            shutil.copyfile(self.importance_csv, path)
        return path or None

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API name
        """Closing the panel keeps a run going in the background (Cancel stops it; QGIS's task bar shows it)."""
        if self.task is not None:
            self.status.setText("Running in the background; the results are added to the project when it ends.")
        super().closeEvent(event)


def _narrow(combo: QComboBox) -> None:
    """Let a combo box shrink with a narrow panel instead of widening it to its longest entry."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)


def _band_descriptions(layer: QgsRasterLayer) -> list[str]:
    """A raster layer's band descriptions (bandName() is "Band 1: <description>" when the file has them)."""
    return [re.sub(r"^Band \d+:?\s*", "", layer.bandName(i)) for i in range(1, layer.bandCount() + 1)]


def _normalised(source: str) -> str:
    """A layer source's file path, comparable across spellings."""
    return os.path.normcase(os.path.realpath(source.split("|")[0]))


def dock_area() -> Qt.DockWidgetArea:
    """Where the dock opens."""
    return Qt.DockWidgetArea.RightDockWidgetArea
