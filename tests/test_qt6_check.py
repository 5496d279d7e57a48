"""The Qt6 check (scripts/check_qt6.py): what PyQt6 rejects is found and fixed; the plugin's GUI code is clean."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_qt6", ROOT / "scripts" / "check_qt6.py")
check_qt6 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_qt6)

SAMPLE = """from qgis.PyQt.QtCore import Qt, QVariant
from qgis.core import QgsProcessing, Qgis
label.setAlignment(Qt.AlignCenter | Qt.AlignmentFlag.AlignLeft)
dialog.exec_()
kind = QVariant.Double
area = Qt.RightDockWidgetArea  # é (columns count bytes)
ok = Qgis.MessageLevel.Warning, QgsProcessing.TypeVectorPolygon
"""


def test_finds_unscoped_enums_exec_and_qvariant_types(qgis_app):
    edits = []
    found = check_qt6.check_source(SAMPLE, "x.py", edits)
    text = "\n".join(found)
    assert "Qt.AlignCenter; write Qt.AlignmentFlag.AlignCenter" in text
    assert "exec_() does not exist in PyQt6" in text and "QVariant.Double" in text
    assert "Qt.DockWidgetArea.RightDockWidgetArea" in text
    assert "QgsProcessing.SourceType.TypeVectorPolygon" in text
    assert "AlignLeft" not in text and "MessageLevel" not in text  # already scoped
    fixed = check_qt6.apply_edits(SAMPLE, edits)
    assert "Qt.AlignmentFlag.AlignCenter | Qt.AlignmentFlag.AlignLeft" in fixed and "dialog.exec()" in fixed
    assert "area = Qt.DockWidgetArea.RightDockWidgetArea  # é" in fixed
    assert [f for f in check_qt6.check_source(fixed, "x.py") if "QVariant" not in f] == []


def test_plugin_and_provider_are_clean(qgis_app):
    files = check_qt6.python_files([str(ROOT / "plugin"), str(ROOT / "processing_provider")])
    found = [f for path in files for f in check_qt6.check_source(Path(path).read_text(encoding="utf-8"), path)]
    assert found == []
