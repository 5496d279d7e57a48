"""The deep-learning dependencies inside QGIS: check, install into a plugin-owned folder, diagnose.

torch, transformers, safetensors and scikit-image are installed by QGIS's own Python with pip into
`<QGIS profile folder>/rts_fusion/site-packages`, which the plugin adds to `sys.path` when it loads. numpy is
pinned to the version QGIS already uses, so the GDAL bindings built against it keep working.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import sys
from dataclasses import dataclass

TORCH_VERSION = "2.13.0"
TORCH_INDEX = "https://download.pytorch.org/whl/{build}"
CUDA_BUILDS = ("cu126", "cu128", "cu130")
OTHER_REQUIREMENTS = ("transformers>=4.40,<5", "safetensors>=0.4", "scikit-image>=0.21")
REQUIRED = ("torch", "transformers", "safetensors", "skimage")


def deps_folder() -> str:
    """The plugin-owned folder the dependencies are installed into."""
    try:
        from qgis.core import QgsApplication

        base = QgsApplication.qgisSettingsDirPath()
    except Exception:  # noqa: BLE001 - outside QGIS
        base = os.path.expanduser("~/.rts_fusion")
    return os.path.join(base, "rts_fusion", "site-packages")


def add_deps_folder_to_path(folder: str | None = None) -> bool:
    """Put the dependency folder on sys.path (once) when it exists; returns whether it is there."""
    folder = folder or deps_folder()
    if not os.path.isdir(folder):
        return False
    if folder not in sys.path:
        sys.path.append(folder)  # after QGIS's own packages: never shadow what QGIS ships
    return True


@dataclass
class DependencyStatus:
    """What is importable, in which version, and what the GPU offers."""

    versions: dict[str, str | None]
    cuda: bool = False
    cuda_version: str | None = None
    gpus: tuple[str, ...] = ()

    @property
    def missing(self) -> list[str]:
        """Names of the required packages that cannot be imported."""
        return [name for name, v in self.versions.items() if v is None]

    @property
    def ok(self) -> bool:
        """True when every deep-learning dependency imports."""
        return not self.missing


def check_dependencies() -> DependencyStatus:
    """Import each required package (a failed import counts as missing) and query CUDA."""
    versions: dict[str, str | None] = {}
    for name in REQUIRED:
        try:
            module = importlib.import_module(name)
            versions[name] = str(getattr(module, "__version__", "?"))
        except Exception:  # noqa: BLE001 - a broken install is as missing as an absent one
            versions[name] = None
    status = DependencyStatus(versions)
    if versions["torch"] is not None:
        import torch

        status.cuda = bool(torch.cuda.is_available())
        status.cuda_version = torch.version.cuda
        if status.cuda:
            status.gpus = tuple(
                f"{torch.cuda.get_device_name(i)} ({torch.cuda.get_device_properties(i).total_memory / 2**30:.1f} GiB)"
                for i in range(torch.cuda.device_count())
            )
    return status


def qgis_python() -> str:
    """The Python interpreter of this QGIS (sys.executable is the QGIS binary on some platforms)."""
    exe = sys.executable or ""
    if os.path.basename(exe).lower().startswith("python"):
        return exe
    candidates = [
        os.path.join(sys.exec_prefix, "python.exe"),  # Windows (OSGeo4W / standalone installer)
        os.path.join(sys.exec_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}"),
        os.path.join(sys.exec_prefix, "bin", "python3"),  # macOS bundle, Linux
    ]
    for c in candidates:
        if os.path.isfile(c):
            return c
    return shutil.which("python3") or "python3"


def install_commands(python: str, target: str, build: str = "cpu", numpy_version: str | None = None) -> list[list[str]]:
    """The pip commands that install the dependencies into `target`.

    Args:
        python: QGIS's Python interpreter.
        target: the plugin-owned folder.
        build: "cpu" or a CUDA wheel build such as "cu128".
        numpy_version: numpy to keep (default: the one QGIS uses now).

    Raises:
        ValueError: an unknown build.

    """
    if build != "cpu" and build not in CUDA_BUILDS:
        raise ValueError(f"Unknown PyTorch build {build!r}; choose cpu or one of {', '.join(CUDA_BUILDS)}.")
    if numpy_version is None:
        import numpy

        numpy_version = numpy.__version__
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", "--target", target]
    pin = f"numpy=={numpy_version}"
    return [
        [*pip, f"torch=={TORCH_VERSION}", pin, "--index-url", TORCH_INDEX.format(build=build)],
        [*pip, *OTHER_REQUIREMENTS, pin],
    ]


def diagnostics() -> str:
    """A plain-text report of Python, QGIS, the geodata stack, torch, CUDA and the GPUs."""
    lines = [
        f"Python {platform.python_version()} ({sys.executable})",
        f"Platform {platform.platform()}",
    ]
    try:
        from qgis.core import Qgis

        lines.append(f"QGIS {Qgis.QGIS_VERSION}")
    except Exception:  # noqa: BLE001
        lines.append("QGIS: not importable")
    for name in ("numpy", "scipy", "rasterio", "osgeo.gdal", "matplotlib"):
        try:
            module = importlib.import_module(name)
            version = getattr(module, "__version__", None) or getattr(module, "VersionInfo", lambda: "?")()
            lines.append(f"{name} {version}")
        except Exception as exc:  # noqa: BLE001
            lines.append(f"{name}: missing ({exc.__class__.__name__})")
    status = check_dependencies()
    for name, version in status.versions.items():
        lines.append(f"{name} {version}" if version else f"{name}: MISSING")
    if status.versions["torch"]:
        lines.append(f"CUDA available: {'yes' if status.cuda else 'no'} (torch built for CUDA {status.cuda_version})")
        lines.extend(f"GPU {i}: {g}" for i, g in enumerate(status.gpus))
    folder = deps_folder()
    lines.append(f"Dependency folder: {folder} ({'present' if os.path.isdir(folder) else 'absent'})")
    lines.append(f"Threads: {os.cpu_count()} CPUs")
    return "\n".join(lines)


def make_install_dialog(parent=None):
    """A dialog that installs the dependencies with QGIS's pip, showing its log (built lazily: Qt needed)."""
    from qgis.PyQt.QtCore import QProcess
    from qgis.PyQt.QtWidgets import (
        QComboBox,
        QDialog,
        QDialogButtonBox,
        QFormLayout,
        QLabel,
        QPlainTextEdit,
        QPushButton,
        QVBoxLayout,
    )

    class InstallDialog(QDialog):
        """Choose CPU or a CUDA build, run pip, show the log and the result."""

        def __init__(self) -> None:
            super().__init__(parent)
            self.setWindowTitle("RTS Fusion: install deep-learning dependencies")
            self.resize(700, 450)
            layout = QVBoxLayout(self)
            status = check_dependencies()
            layout.addWidget(
                QLabel(
                    "Detection and training need PyTorch, transformers, safetensors and scikit-image in QGIS's "
                    f"Python. Missing now: {', '.join(status.missing) or 'nothing'}.\nThey are installed into "
                    f"{deps_folder()} (numpy stays at QGIS's version)."
                )
            )
            form = QFormLayout()
            self.build = QComboBox()
            self.build.addItem("CPU only", "cpu")
            for b in CUDA_BUILDS:
                self.build.addItem(f"NVIDIA GPU, CUDA {b[2:-1]}.{b[-1]}", b)
            form.addRow("PyTorch build", self.build)
            layout.addLayout(form)
            self.log = QPlainTextEdit(readOnly=True)
            layout.addWidget(self.log)
            self.result_label = QLabel("")
            layout.addWidget(self.result_label)
            buttons = QDialogButtonBox(QDialogButtonBox.Close)
            self.install_button = QPushButton("Install")
            buttons.addButton(self.install_button, QDialogButtonBox.ActionRole)
            buttons.rejected.connect(self.reject)
            self.install_button.clicked.connect(self.start)
            layout.addWidget(buttons)
            self.process: QProcess | None = None
            self.queue: list[list[str]] = []
            self.failed = False

        def commands(self) -> list[list[str]]:
            return install_commands(qgis_python(), deps_folder(), self.build.currentData())

        def start(self) -> None:
            os.makedirs(deps_folder(), exist_ok=True)
            self.queue = self.commands()
            self.failed = False
            self.install_button.setEnabled(False)
            self.result_label.setText("Installing…")
            self._next()

        def _next(self) -> None:
            if not self.queue:
                add_deps_folder_to_path()
                importlib.invalidate_caches()
                missing = check_dependencies().missing
                self.result_label.setText(
                    "Installed. Restart QGIS to use detection and training."
                    if not missing
                    else f"Installed, but these still do not import: {', '.join(missing)}. See the log."
                )
                self.install_button.setEnabled(True)
                return
            cmd = self.queue.pop(0)
            self.log.appendPlainText("$ " + " ".join(cmd))
            self.process = QProcess(self)
            self.process.setProcessChannelMode(QProcess.MergedChannels)
            self.process.readyReadStandardOutput.connect(
                lambda: self.log.appendPlainText(bytes(self.process.readAllStandardOutput()).decode(errors="replace"))
            )
            self.process.finished.connect(self._finished)
            self.process.errorOccurred.connect(self._failed)
            self.process.start(cmd[0], cmd[1:])

        def _finished(self, code: int, _status) -> None:
            if self.failed:
                return
            if code != 0:
                self._failed(None)
                return
            self._next()

        def _failed(self, _error) -> None:
            self.failed = True  # errorOccurred may be followed by finished: report once
            self.queue.clear()
            self.result_label.setText(
                "Installation failed (see the log). QGIS is unaffected; you can install the packages by hand "
                "as the README explains."
            )
            self.install_button.setEnabled(True)

    return InstallDialog()
