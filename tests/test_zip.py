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
