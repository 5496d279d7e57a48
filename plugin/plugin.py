"""The plugin class: registers the Processing provider and the plugin's menu entries."""

from __future__ import annotations

import os

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QDesktopServices, QIcon

from ..processing_provider.provider import RtsFusionProvider

PLUGIN_DIR = os.path.dirname(os.path.dirname(__file__))
MENU = "&RTS Fusion"


class RtsFusionPlugin:
    """QGIS plugin object created by classFactory."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: RtsFusionProvider | None = None
        self.actions: list = []

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API name
        """Register the Processing provider (also called by qgis_process, which has no GUI)."""
        self.provider = RtsFusionProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API name
        """Register the provider and add the plugin's menu entries."""
        self.initProcessing()
        from qgis.PyQt.QtWidgets import QAction

        icon = QIcon(os.path.join(PLUGIN_DIR, "resources", "icon.svg"))
        help_action = QAction(icon, "RTS Fusion help", self.iface.mainWindow())
        help_action.triggered.connect(self.open_help)
        self.iface.addPluginToRasterMenu(MENU, help_action)
        self.actions.append(help_action)

    def open_help(self) -> None:
        """Open the plugin's README in the system's viewer."""
        QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.join(PLUGIN_DIR, "README.md")))

    def unload(self) -> None:
        """Remove everything the plugin added."""
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
        self.actions.clear()
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
