"""Fail on Qt code that PyQt6 (QGIS 4) rejects: unscoped enums, exec_(), print_(), QVariant field types.

What QGIS's own migration script (scripts/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py in the QGIS repository) rewrites, as
a check: for every attribute `X.Y` where X is a class imported from qgis.PyQt.*, qgis.core or qgis.gui, the
value of `X.Y` is looked up in the installed bindings; when it is a member of an enum `E` reachable as `X.E`, the
code must say `X.E.Y` (PyQt6 has no unscoped names). `exec_()`/`print_()` and `QVariant.<Type>` (QMetaType on
Qt6) are reported too.

Usage: python scripts/check_qt6.py [--fix] [paths…] (default: plugin/ processing_provider/); exits 1 on findings.
With --fix, enums are qualified and exec_()/print_() renamed in place (QVariant field types are left to a person).
"""

from __future__ import annotations

import ast
import enum
import importlib
import os
import sys

QT_MODULES = ("qgis.PyQt.", "qgis.core", "qgis.gui", "PyQt5.", "PyQt6.")
DEFAULT_PATHS = ("plugin", "processing_provider")


def _is_enum_member(value: object) -> str | None:
    """The enum type's name when `value` is an enum member (sip enum or Python enum), else None."""
    kind = type(value)
    if isinstance(value, enum.Enum):
        return kind.__name__
    meta = type(kind).__name__
    if meta in ("enumtype", "EnumType", "sip.enumtype") or (isinstance(value, int) and type(kind) is not type):
        return kind.__name__
    return None


def _imported_classes(tree: ast.AST) -> dict[str, object]:
    """Names bound by `from <Qt or QGIS module> import Name` in a file, resolved to the objects."""
    found: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(QT_MODULES):
            try:
                module = importlib.import_module(node.module)
            except ImportError:
                continue
            for alias in node.names:
                obj = getattr(module, alias.name, None)
                if isinstance(obj, type):
                    found[alias.asname or alias.name] = obj
    return found


Edit = tuple[int, int, int, str]  # (line, start col, end col, replacement) on one line, 1-based line


def check_source(source: str, filename: str = "<string>", edits: list[Edit] | None = None) -> list[str]:
    """Findings for one file's source, as 'file:line: message'; fixable ones also appended to `edits`."""
    tree = ast.parse(source, filename)
    classes = _imported_classes(tree)
    findings = []
    edits = [] if edits is None else edits
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("exec_", "print_") and node.end_lineno == node.lineno:
            findings.append(f"{filename}:{node.lineno}: {node.attr}() does not exist in PyQt6; use {node.attr[:-1]}()")
            edits.append((node.end_lineno, node.end_col_offset - len(node.attr), node.end_col_offset, node.attr[:-1]))
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        owner, name = node.value.id, node.attr
        if owner == "QVariant" and name[:1].isupper() and name != "Type":
            findings.append(
                f"{filename}:{node.lineno}: QVariant.{name} as a field type is gone in Qt6; use "
                "processing_provider.common.field_type"
            )
            continue
        cls = classes.get(owner)
        if cls is None or name.startswith("_"):
            continue
        value = getattr(cls, name, None)
        enum_name = _is_enum_member(value) if value is not None else None
        if enum_name and enum_name != name and getattr(cls, enum_name, None) is type(value):
            findings.append(f"{filename}:{node.lineno}: unscoped enum {owner}.{name}; write {owner}.{enum_name}.{name}")
            end = node.value.end_col_offset
            edits.append((node.value.end_lineno, end, end, f".{enum_name}"))
    return findings


def apply_edits(source: str, edits: list[Edit]) -> str:
    """The source with the edits applied (from the last to the first, so columns stay valid)."""
    lines = source.splitlines(keepends=True)
    for line, start, end, text in sorted(set(edits), reverse=True):
        raw = lines[line - 1].encode()  # ast columns count UTF-8 bytes
        lines[line - 1] = (raw[:start] + text.encode() + raw[end:]).decode()
    return "".join(lines)


def python_files(paths: list[str]) -> list[str]:
    """The .py files under the given files or folders."""
    files = []
    for path in paths:
        if os.path.isfile(path):
            files.append(path)
        for root, _dirs, names in os.walk(path):
            files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".py")]
    return files


def main(argv: list[str]) -> int:
    """Check the files; print findings; 1 when there are any."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    fix = "--fix" in argv
    argv = [a for a in argv if a != "--fix"]
    findings = []
    for path in python_files(argv or list(DEFAULT_PATHS)):
        with open(path, encoding="utf-8") as f:
            source = f.read()
        edits: list[Edit] = []
        found = check_source(source, path, edits)
        if fix and edits:
            with open(path, "w", encoding="utf-8") as f:
                f.write(apply_edits(source, edits))
            found = check_source(apply_edits(source, edits), path)
        findings += found
    print("\n".join(findings) or "Qt6 check: no unscoped enums, exec_() or QVariant field types.")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
