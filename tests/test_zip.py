"""The plugin zip: its README refers only to files the zip holds."""

from __future__ import annotations

import re
import sys
import zipfile

from conftest import ROOT

TOP_LEVEL = ("scripts/", "tests/", "bench/", "docs/", "demo_output/", ".venv/", "dist/", "Makefile", ".ci/")


def test_zip_readme_refers_only_to_what_the_zip_holds(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from build_zip import build

    path = build(tmp_path / "rts_fusion.zip")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        readme = zf.read("rts_fusion/README.md").decode("utf-8")
    assert "rts_fusion/resources/help/index.html" in names
    assert "rts_fusion/resources/models/train_detect_evaluate.model3" in names
    for token in TOP_LEVEL:
        assert token not in readme, f"the zip's README mentions {token}, which the zip does not hold"
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    paths = re.findall(r"`((?:resources|core|models|plugin|processing_provider|pipeline)/[^`\s]*)`", readme)
    for ref in links + paths:
        ref = ref.rstrip("/")
        assert f"rts_fusion/{ref}" in names or any(n.startswith(f"rts_fusion/{ref}/") for n in names), ref
    assert "RTS Fusion panel" in readme and "landsatbands" in readme  # the user-facing parts stay
    full = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/screenshots/" in full  # …and the checkout's README keeps the screenshots


def test_zip_holds_every_package_its_code_imports(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from build_zip import build

    with zipfile.ZipFile(build(tmp_path / "rts_fusion.zip")) as zf:
        names = zf.namelist()
        sources = {n: zf.read(n).decode("utf-8") for n in names if n.endswith(".py")}
    folders = {n.split("/")[1] for n in names if n.count("/") >= 2}
    assert {"pipeline", "core", "models", "plugin", "processing_provider"} <= folders
    for name, source in sources.items():
        for package in re.findall(r"^\s*from \.\.(\w+)", source, flags=re.MULTILINE):
            assert package in folders, f"{name} imports ..{package}, which the zip lacks"
    assert "rts_fusion/pipeline/worker.py" in names and "rts_fusion/pipeline/environment.py" in names
