"""The plugin class: Processing provider, the dock, menu and toolbar, and the dependency check."""

from __future__ import annotations

import contextlib
import os

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QDesktopServices, QIcon

from ..pipeline.environment import MAPPING_ONLY
from ..processing_provider.common import missing_modules
from ..processing_provider.provider import RtsFusionProvider
from .dependencies import REQUIRED, add_deps_folder_to_path

try:  # Qt6 (QGIS 4) moved QAction to QtGui
    from qgis.PyQt.QtGui import QAction
except ImportError:
    from qgis.PyQt.QtWidgets import QAction

PLUGIN_DIR = os.path.dirname(os.path.dirname(__file__))
MENU = "&RTS Fusion"


class RtsFusionPlugin:
    """QGIS plugin object created by classFactory."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: RtsFusionProvider | None = None
        self.actions: list = []
        self.toolbar = None
        self.dock = None
        self.deps_message = None
        self.import_check = None
        add_deps_folder_to_path()  # packages installed by the plugin's dependency dialog

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API name
        """Register the Processing provider (also called by qgis_process, which has no GUI)."""
        self.provider = RtsFusionProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API name
        """Register the provider, add the menu and toolbar, and say what is missing for deep learning."""
        self.initProcessing()
        icon = QIcon(os.path.join(PLUGIN_DIR, "resources", "icon.svg"))
        window = self.iface.mainWindow()
        self.dock_action = QAction(icon, "RTS Fusion panel", window)
        self.dock_action.setCheckable(True)
        self.dock_action.toggled.connect(self.show_dock)
        entries = [
            self.dock_action,
            (QAction(icon, "RTS Fusion algorithms in the Processing toolbox", window), self.open_toolbox),
            (QAction("Install deep-learning dependencies…", window), self.open_installer),
            (QAction("Diagnostics…", window), self.show_diagnostics),
            (QAction("RTS Fusion help", window), self.open_help),
        ]
        for entry in entries:
            action = entry if isinstance(entry, QAction) else entry[0]
            if not isinstance(entry, QAction):
                action.triggered.connect(entry[1])
            self.iface.addPluginToRasterMenu(MENU, action)
            self.actions.append(action)
        self.toolbar = self.iface.addToolBar("RTS Fusion")
        self.toolbar.setObjectName("RtsFusionToolbar")
        self.toolbar.addAction(self.dock_action)
        self.check_dependencies()

    def check_dependencies(self) -> list[str]:
        """Say what deep learning lacks: missing packages at once, a broken install after a subprocess check.

        Packages that cannot be found are reported immediately. When all are there, they are really imported in
        a separate QGIS Python with the plugin's path set-up (so a broken install cannot break QGIS); a failure
        is reported when that check finishes.
        """
        missing = missing_modules(REQUIRED)
        mapping_only = bool(missing) and not missing_modules(MAPPING_ONLY)
        if mapping_only:  # ONNX Runtime present: mapping with exported .onnx models works without torch
            self._show_deps_message(
                f"Mapping with exported .onnx models works (ONNX Runtime). Training, band importance, the model study "
                f"and mapping with .safetensors packages need {', '.join(missing)} in QGIS's Python."
            )
            self.start_import_check(mapping_only=True)
        elif missing:
            self._show_deps_message(
                f"Detection and training need {', '.join(missing)} in QGIS's Python (or, for mapping with exported "
                ".onnx models only, onnxruntime). Data preparation works without."
            )
        else:
            self.start_import_check()
        return missing

    def start_import_check(self, mapping_only: bool = False) -> None:
        """Import the deep-learning (or mapping-only) stack in a separate process; report problems when it finishes."""
        from qgis.PyQt.QtCore import QProcess

        from .dependencies import check_command, deps_folder, parse_check, qgis_python

        try:
            cmd = check_command(qgis_python(), deps_folder() if os.path.isdir(deps_folder()) else None, mapping_only)
        except RuntimeError as exc:
            self._show_deps_message(str(exc))
            return
        process = QProcess()
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)

        def finished(code: int, _status) -> None:
            report = parse_check(bytes(process.readAllStandardOutput()).decode(errors="replace"), code)
            if not report.get("ok"):
                problems = "; ".join(report.get("problems") or [])
                self._show_deps_message(f"The deep-learning packages are installed but do not work: {problems}")
            self.import_check = None

        process.finished.connect(finished)
        self.import_check = process
        process.start(cmd[0], cmd[1:])

    def _show_deps_message(self, text: str) -> None:
        from qgis.PyQt.QtWidgets import QPushButton

        bar = self.iface.messageBar()
        item = bar.createMessage("RTS Fusion", text)
        button = QPushButton("Install…", item)
        button.clicked.connect(self.open_installer)
        item.layout().addWidget(button)
        self.deps_message = item
        bar.pushWidget(item, Qgis.MessageLevel.Warning)

    def show_dock(self, visible: bool = True) -> None:
        """Create the dock on first use and show or hide it."""
        if self.dock is None:
            from .dock import RtsFusionDock, dock_area

            self.dock = RtsFusionDock(self.iface.mainWindow())
            self.iface.addDockWidget(dock_area(), self.dock)
            self.dock.visibilityChanged.connect(self.dock_action.setChecked)
            self.dock.finished.connect(self._run_finished)
        self.dock.setVisible(visible)

    def _run_finished(self, ok: bool) -> None:
        """A run of a closed panel ended: say so in the message bar (the panel shows it when open)."""
        if self.dock is not None and not self.dock.isVisible():
            level = Qgis.MessageLevel.Success if ok else Qgis.MessageLevel.Warning
            self.iface.messageBar().pushMessage("RTS Fusion", self.dock.status.text(), level, 10)

    def open_toolbox(self) -> None:
        """Show the Processing toolbox filtered to this plugin's algorithms."""
        from qgis.PyQt.QtWidgets import QDockWidget

        toolbox = self.iface.mainWindow().findChild(QDockWidget, "ProcessingToolbox")
        if toolbox is None:
            return
        toolbox.setVisible(True)
        toolbox.raise_()
        search = getattr(toolbox, "searchBox", None)
        if search is not None:
            search.setText("rtsfusion")

    def open_installer(self) -> None:
        """Open the dialog that installs torch and friends into the plugin's folder."""
        from .dependencies import make_install_dialog

        make_install_dialog(self.iface.mainWindow()).exec()

    def show_diagnostics(self) -> str:
        """Show Python, QGIS, torch, CUDA and GPU details (copyable)."""
        from qgis.PyQt.QtWidgets import QMessageBox

        from .dependencies import diagnostics

        text = diagnostics()
        box = QMessageBox(QMessageBox.Icon.Information, "RTS Fusion diagnostics", text, parent=self.iface.mainWindow())
        box.setDetailedText(text)
        box.open()
        self._diagnostics_box = box
        return text

    def open_help(self) -> None:
        """Open the user guide shipped with the plugin (resources/help/index.html) in the system's browser."""
        QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.join(PLUGIN_DIR, "resources", "help", "index.html")))

    def unload(self) -> None:
        """Remove everything the plugin added."""
        if self.import_check is not None:
            self.import_check.kill()
            self.import_check.waitForFinished(1000)
            self.import_check = None
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
        self.actions.clear()
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.dock is not None:
            self.dock.shutdown()  # cancels a run and detaches it, so nothing calls back into the deleted dock
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.deps_message is not None:
            with contextlib.suppress(RuntimeError):  # already closed by the user
                self.iface.messageBar().popWidget(self.deps_message)
            self.deps_message = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
