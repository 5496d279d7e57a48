"""Build the installable plugin zip (rts_fusion/ inside) with only what the plugin needs at run time."""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INCLUDE_DIRS = ("plugin", "processing_provider", "pipeline", "core", "models", "resources")
INCLUDE_FILES = ("__init__.py", "metadata.txt", "LICENSE", "requirements.txt")
# README sections about the development checkout (make targets, benchmarks, source layout): not in the zip.
DEV_SECTIONS = ("The two commands", "Benchmarks", "Layout")


def zip_readme(text: str) -> str:
    """The README as the zip ships it: without `<!-- dev -->` … `<!-- /dev -->` blocks and the DEV_SECTIONS."""
    text = re.sub(r"<!-- dev -->.*?<!-- /dev -->\n?", "", text, flags=re.DOTALL)
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            skipping = line[3:].strip() in DEV_SECTIONS
        if not skipping:
            kept.append(line)
    return "".join(kept)


def build(dest: Path) -> Path:
    """Write the zip to dest and return its path."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in INCLUDE_FILES:
            zf.write(ROOT / name, f"rts_fusion/{name}")
        zf.writestr("rts_fusion/README.md", zip_readme((ROOT / "README.md").read_text(encoding="utf-8")))
        for folder in INCLUDE_DIRS:
            base = ROOT / folder
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    zf.write(path, f"rts_fusion/{path.relative_to(ROOT)}")
    return dest


if __name__ == "__main__":
    version = next(
        line.split("=", 1)[1].strip()
        for line in (ROOT / "metadata.txt").read_text().splitlines()
        if line.startswith("version=")
    )
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist" / f"rts_fusion-{version}.zip"
    print(build(target))
