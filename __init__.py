"""RTS Fusion QGIS plugin: entry point (classFactory only; nothing heavy is imported here)."""


def classFactory(iface):  # noqa: N802 - name fixed by QGIS
    """Create the plugin instance QGIS asks for."""
    from .plugin.plugin import RtsFusionPlugin

    return RtsFusionPlugin(iface)
