import subprocess
import sys

from conftest import ROOT, ensure_provider
from qgis.core import QgsApplication


def test_plugin_loads_registers_provider_and_unloads(qgis_iface, qgis_processing):
    import rts_fusion

    registry = QgsApplication.processingRegistry()
    earlier = registry.providerById("rtsfusion")  # registered by the `provider` fixture, re-added on demand
    if earlier is not None:
        registry.removeProvider(earlier)
    plugin = rts_fusion.classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert registry.providerById("rtsfusion") is plugin.provider
        assert registry.algorithmById("rtsfusion:alignfuse") is not None
    finally:
        plugin.unload()
    assert registry.providerById("rtsfusion") is None
    ensure_provider()  # for the tests that follow
    assert plugin.provider is None and not plugin.actions


def test_metadata_declares_processing_provider():
    text = (ROOT / "metadata.txt").read_text()
    for line in ("name=RTS Fusion", "qgisMinimumVersion=3.22", "hasProcessingProvider=yes", "icon=resources/icon.svg"):
        assert line in text
    assert (ROOT / "resources" / "icon.svg").read_text().startswith("<svg")


def test_provider_loads_without_torch():
    # Torch and transformers made unimportable: the provider must still load, list its algorithms and their help.
    code = f"""
import sys, importlib.util
sys.modules['torch'] = None
sys.modules['transformers'] = None
spec = importlib.util.spec_from_file_location('rts_fusion', r'{ROOT / "__init__.py"}',
                                              submodule_search_locations=[r'{ROOT}'])
mod = importlib.util.module_from_spec(spec); sys.modules['rts_fusion'] = mod; spec.loader.exec_module(mod)
from qgis.core import QgsApplication
app = QgsApplication([], False); app.initQgis()
from rts_fusion.processing_provider.provider import RtsFusionProvider
p = RtsFusionProvider(); p.loadAlgorithms()
for a in p.algorithms():
    a.shortHelpString()  # the toolbox shows every algorithm's help without torch too
print(sorted(a.name() for a in p.algorithms()))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert "'alignfuse'" in out.stdout and "'samplescene'" in out.stdout
