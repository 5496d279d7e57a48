"""The deep-learning dependencies inside QGIS: check, install into a plugin-owned folder, diagnose.

Two stacks can be installed: PyTorch (training and mapping) or "mapping only", ONNX Runtime and scikit-image,
which maps with models exported to .onnx and needs no torch. They are installed by QGIS's own Python with pip into
`<QGIS profile folder>/rts_fusion/site-packages`, which the plugin puts on `sys.path` before the system's
site-packages/dist-packages when it loads (pipeline/environment.py), so what it installed wins over older system
copies (Debian's sympy, say). numpy is pinned to the version QGIS uses while resolving, then removed from the
folder with everything else QGIS must keep its own build of (numpy, GDAL, Qt): those always come from QGIS.

pip installs into a staging folder beside the target; only when pip succeeds and the stack really imports from
it in a fresh QGIS Python is it moved into place, so a failed install leaves nothing that looks "present".
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

# The interpreter choice and the package lists live there: region mapping's workers and the import check use them too.
from ..pipeline.environment import MAPPING_ONLY, NEVER_PRIVATE, REQUIRED, prepend_deps_folder, qgis_python

TORCH_VERSION = "2.13.0"
TORCH_INDEX = "https://download.pytorch.org/whl/{build}"
CUDA_BUILDS = ("cu126", "cu128", "cu130")
OTHER_REQUIREMENTS = ("transformers>=4.40,<5", "safetensors>=0.4", "scikit-image>=0.21")
# The light choice: mapping with exported .onnx models, no torch (onnxruntime 1.31.1 on Linux: a 23 MB wheel,
# 69 MB installed, against about 960 MB for torch CPU + transformers; bench/results/onnx.md).
MAPPING_BUILD = "onnx"
ORT_VERSION = "1.31.1"
MAPPING_REQUIREMENTS = (f"onnxruntime=={ORT_VERSION}", "scikit-image>=0.21")


def deps_folder() -> str:
    """The plugin-owned folder the dependencies are installed into."""
    try:
        from qgis.core import QgsApplication

        base = QgsApplication.qgisSettingsDirPath()
    except Exception:  # noqa: BLE001 - outside QGIS
        base = os.path.expanduser("~/.rts_fusion")
    return os.path.join(base, "rts_fusion", "site-packages")


def add_deps_folder_to_path(folder: str | None = None) -> bool:
    """Put the dependency folder on sys.path before site-packages (once) when it exists; returns whether it is."""
    return prepend_deps_folder(folder or deps_folder())


@dataclass
class DependencyStatus:
    """What is importable, in which version, and what the GPU offers."""

    versions: dict[str, str | None]
    cuda: bool = False
    cuda_version: str | None = None
    gpus: tuple[str, ...] = ()
    onnxruntime: str | None = None

    @property
    def missing(self) -> list[str]:
        """Names of the required packages that cannot be imported."""
        return [name for name, v in self.versions.items() if v is None]

    @property
    def ok(self) -> bool:
        """True when every deep-learning dependency imports (training, importance, the study and mapping)."""
        return not self.missing

    @property
    def can_map(self) -> bool:
        """True when mapping works: with PyTorch, or with ONNX Runtime for exported .onnx models."""
        found = {**self.versions, "onnxruntime": self.onnxruntime}
        return self.ok or all(found.get(name) is not None for name in MAPPING_ONLY)


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
    try:
        import onnxruntime

        status.onnxruntime = str(onnxruntime.__version__)
    except Exception:  # noqa: BLE001 - broken counts as missing
        status.onnxruntime = None
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


def install_commands(
    python: str, target: str, build: str = "cpu", numpy_version: str | None = None, system: str = sys.platform
) -> list[list[str]]:
    """The pip commands that install the dependencies into `target`: alternatives, the first that succeeds wins.

    Build "onnx" is the mapping-only stack (onnxruntime and scikit-image from PyPI, no torch).

    torch is asked for with its build label (``torch==2.13.0+cpu``, ``+cu128`` …), which only PyTorch's wheel index
    (given as an extra index) carries, so pip can never pick PyPI's multi-GB CUDA build by mistake; everything else
    comes from PyPI, with numpy pinned to QGIS's version so that the resolver picks packages that work with it. On
    macOS PyPI's torch is the (CPU/Metal) build and there is no label.

    Args:
        python: QGIS's Python interpreter.
        target: the folder pip installs into.
        build: "onnx" (mapping only), "cpu" or a CUDA wheel build such as "cu128".
        numpy_version: numpy to keep (default: the one QGIS uses now).
        system: sys.platform of the machine.

    Raises:
        ValueError: an unknown build, or CUDA on macOS.

    """
    if build not in ("cpu", MAPPING_BUILD, *CUDA_BUILDS):
        raise ValueError(
            f"Unknown PyTorch build {build!r}; choose {MAPPING_BUILD} (mapping only), cpu or one of "
            f"{', '.join(CUDA_BUILDS)}."
        )
    if numpy_version is None:
        import numpy

        numpy_version = numpy.__version__
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", "--target", target]
    pin = f"numpy=={numpy_version}"
    if build == MAPPING_BUILD:
        return [[*pip, *MAPPING_REQUIREMENTS, pin]]
    if system == "darwin":
        if build != "cpu":
            raise ValueError("PyTorch has no CUDA builds for macOS; choose the CPU build.")
        return [[*pip, f"torch=={TORCH_VERSION}", *OTHER_REQUIREMENTS, pin]]
    torch = f"torch=={TORCH_VERSION}+{build}"
    # First without PyTorch's index: where pip already finds the labelled build (a local wheel, a company mirror) an
    # unreachable index would cost seconds of retries for every package resolved; elsewhere this fails within
    # seconds (PyPI has no labelled torch) and the second attempt adds the index.
    plain = [*pip, torch, *OTHER_REQUIREMENTS, pin]
    return [plain, [*plain, "--extra-index-url", TORCH_INDEX.format(build=build)]]


@dataclass(frozen=True)
class InstallPlan:
    """One installation: a staging folder beside the target, filled by pip, moved into place on success.

    `commands` are alternative pip runs, tried in order with the folder emptied between them; the first that
    succeeds fills it.
    """

    python: str
    target: str
    staging: str
    commands: tuple[tuple[str, ...], ...]
    mapping_only: bool = False


def plan_install(python: str, target: str, build: str = "cpu", numpy_version: str | None = None) -> InstallPlan:
    """Create the staging folder (beside `target`, same file system) and the pip commands that fill it.

    Raises:
        ValueError: an unknown build.

    """
    commands = install_commands(python, "", build, numpy_version)  # validates the build before touching disk
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".site-packages-installing-", dir=parent)
    commands = install_commands(python, staging, build, numpy_version)
    return InstallPlan(python, target, staging, tuple(tuple(c) for c in commands), build == MAPPING_BUILD)


RETRY_MESSAGE = "pip could not install it that way; trying the next way (with PyTorch's package index)…"


def empty_staging(plan: InstallPlan) -> None:
    """Empty the staging folder before the next attempt (a failed pip run may have left part of its work)."""
    shutil.rmtree(plan.staging, ignore_errors=True)
    os.makedirs(plan.staging, exist_ok=True)


def prune_never_private(folder: str) -> list[str]:
    """Remove what QGIS must keep its own build of (numpy, GDAL, Qt …) from a folder; returns what went."""
    removed = []
    for entry in sorted(os.listdir(folder)):
        if entry.split("-")[0].split(".")[0] in NEVER_PRIVATE:
            path = os.path.join(folder, entry)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            removed.append(entry)
    return removed


CHECK_MARK = "RTSFUSION-CHECK "


def check_command(python: str, folder: str | None, mapping_only: bool = False) -> list[str]:
    """The command that imports the stack in a fresh interpreter with the plugin's path set-up for `folder`.

    `mapping_only` checks the ONNX Runtime stack (MAPPING_ONLY) instead of PyTorch's.
    """
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipeline", "environment.py")
    return [python, script, "--check-mapping" if mapping_only else "--check", *([folder] if folder else [])]


def parse_check(output: str, exit_code: int | None = None) -> dict:
    """The report printed by the check command; a crash (no report) becomes a failed report naming the exit."""
    for line in reversed(output.splitlines()):
        if line.startswith(CHECK_MARK):
            return json.loads(line[len(CHECK_MARK) :])
    tail = " ".join(output.strip().splitlines()[-3:])
    return {"ok": False, "modules": {}, "problems": [f"The import check crashed (exit code {exit_code}): {tail}"]}


def check_folder(python: str, folder: str | None, timeout: float = 600, mapping_only: bool = False) -> dict:
    """Import the deep-learning stack from `folder` in a separate QGIS Python (a crash cannot hurt QGIS)."""
    try:
        cmd = check_command(python, folder, mapping_only)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "modules": {}, "problems": [f"The import check could not run: {exc}"]}
    return parse_check(done.stdout + done.stderr, done.returncode)


def commit_install(plan: InstallPlan, report: dict) -> list[str]:
    """Move the staging folder into place when the check passed, else remove it; returns the problems.

    The earlier installation is replaced only after the new one imports.
    """
    if not report.get("ok"):
        shutil.rmtree(plan.staging, ignore_errors=True)
        return list(report.get("problems") or ["The installed packages do not import."])
    old = None
    try:
        if os.path.exists(plan.target):
            old = tempfile.mkdtemp(prefix=".site-packages-old-", dir=os.path.dirname(plan.target))
            os.rmdir(old)
            os.replace(plan.target, old)
        os.replace(plan.staging, plan.target)
    except OSError as exc:
        if old and not os.path.exists(plan.target):
            os.replace(old, plan.target)  # put the earlier installation back
            old = None
        shutil.rmtree(plan.staging, ignore_errors=True)
        return [f"Cannot move the new packages into {plan.target} ({exc}); restart QGIS and install again."]
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return []


def install(plan: InstallPlan, log: Callable[[str], None] = print) -> list[str]:
    """Run a plan without Qt (tests, scripts): pip commands, prune, import check, move into place.

    Returns:
        The problems (empty: installed and importing).

    """
    for attempt, cmd in enumerate(plan.commands, 1):
        log("$ " + " ".join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True)
        log(done.stdout[-4000:] + done.stderr[-4000:])
        if done.returncode == 0:
            break
        if attempt < len(plan.commands):
            log(RETRY_MESSAGE)
            empty_staging(plan)
            continue
        shutil.rmtree(plan.staging, ignore_errors=True)
        return [f"pip failed (exit code {done.returncode}); see the log."]
    log(f"Removed from the folder (QGIS keeps its own): {', '.join(prune_never_private(plan.staging)) or 'nothing'}")
    return commit_install(plan, check_folder(plan.python, plan.staging, mapping_only=plan.mapping_only))


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
    lines.append(f"onnxruntime {status.onnxruntime}" if status.onnxruntime else "onnxruntime: missing")
    lines.append(
        "Mapping: " + ("PyTorch" if status.ok else "ONNX Runtime (exported .onnx models)" if status.can_map else "NO")
    )
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
        """Choose PyTorch (CPU or a CUDA build) or mapping only (ONNX Runtime), run pip, show the log and the result."""

        def __init__(self) -> None:
            super().__init__(parent)
            self.setWindowTitle("RTS Fusion: install deep-learning dependencies")
            self.resize(700, 450)
            layout = QVBoxLayout(self)
            status = check_dependencies()
            intro = QLabel(
                "Training, band importance and the model study need PyTorch, transformers, safetensors and "
                "scikit-image in QGIS's Python; mapping works with those or, for models exported to .onnx, with "
                "ONNX Runtime and scikit-image alone. Missing now for PyTorch: "
                f"{', '.join(status.missing) or 'nothing'}; ONNX Runtime: "
                f"{status.onnxruntime or 'missing'}.\nThe choice is installed into {deps_folder()} (numpy "
                "stays at QGIS's version), replacing what the plugin installed there before."
            )
            intro.setWordWrap(True)  # long lines would make the dialog wider than a 1366 px screen
            layout.addWidget(intro)
            form = QFormLayout()
            self.build = QComboBox()
            # Sized to a short entry, not the longest one, so the dialog fits a small screen.
            self.build.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            self.build.setMinimumContentsLength(30)
            self.build.addItem("PyTorch, CPU only (about 1 GB)", "cpu")
            for b in CUDA_BUILDS:
                self.build.addItem(f"PyTorch, NVIDIA GPU, CUDA {b[2:-1]}.{b[-1]} (several GB)", b)
            self.build.addItem("Mapping only: ONNX Runtime (about 70 MB)", MAPPING_BUILD)
            self.build.setToolTip(
                "PyTorch trains and maps; mapping only maps models exported to .onnx ('Export model to ONNX') "
                "and cannot train or rank bands."
            )
            form.addRow("Install", self.build)
            layout.addLayout(form)
            self.log = QPlainTextEdit(readOnly=True)
            layout.addWidget(self.log)
            self.result_label = QLabel("")
            self.result_label.setWordWrap(True)
            layout.addWidget(self.result_label)
            buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
            self.install_button = QPushButton("Install")
            buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.ActionRole)
            buttons.rejected.connect(self.reject)
            self.install_button.clicked.connect(self.start)
            layout.addWidget(buttons)
            self.process: QProcess | None = None
            self.plan: InstallPlan | None = None
            self.queue: list[tuple[str, ...]] = []
            self.output = ""
            self.checking = False
            self.failed = False

        def start(self) -> None:
            try:
                self.plan = plan_install(qgis_python(), deps_folder(), self.build.currentData())
            except (RuntimeError, OSError) as exc:
                self.result_label.setText(f"Cannot install: {exc}")
                return
            self.queue = list(self.plan.commands)
            self.failed = self.checking = False
            self.install_button.setEnabled(False)
            self.result_label.setText("Installing…")
            self._next()

        def _run(self, cmd: tuple[str, ...] | list[str]) -> None:
            self.log.appendPlainText("$ " + " ".join(cmd))
            self.output = ""
            self.process = QProcess(self)
            self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
            self.process.readyReadStandardOutput.connect(self._read)
            self.process.finished.connect(self._finished)
            self.process.errorOccurred.connect(self._failed)
            self.process.start(cmd[0], list(cmd[1:]))

        def _read(self) -> None:
            text = bytes(self.process.readAllStandardOutput()).decode(errors="replace")
            self.output += text
            self.log.appendPlainText(text.rstrip())

        def _next(self) -> None:
            if self.queue:
                self._run(self.queue.pop(0))
                return
            removed = prune_never_private(self.plan.staging)
            self.log.appendPlainText(f"Left to QGIS (removed from the folder): {', '.join(removed) or 'nothing'}")
            self.result_label.setText("Checking that the packages import…")
            self.checking = True
            self._run(check_command(self.plan.python, self.plan.staging, self.plan.mapping_only))

        def _finished(self, code: int, _status) -> None:
            if self.failed:
                return
            if self.checking:
                problems = commit_install(self.plan, parse_check(self.output, code))
                done = "mapping with .onnx models" if self.plan.mapping_only else "detection and training"
                self.result_label.setText(
                    f"Installed and checked. Restart QGIS to use {done}."
                    if not problems
                    else "Not installed (nothing was changed): " + " ".join(problems)
                )
                self.install_button.setEnabled(True)
                return
            if code != 0 and self.queue:
                self.log.appendPlainText(RETRY_MESSAGE)
                empty_staging(self.plan)
                self._next()
                return
            if code != 0:
                self._failed(None)
                return
            self.queue.clear()  # one attempt succeeded: the others are alternatives, not further steps
            self._next()

        def _failed(self, _error) -> None:
            self.failed = True  # errorOccurred may be followed by finished: report once
            self.queue.clear()
            if self.plan is not None:
                shutil.rmtree(self.plan.staging, ignore_errors=True)
            self.result_label.setText(
                "Installation failed (see the log); nothing was changed. QGIS is unaffected; you can install the "
                "packages by hand as the README explains."
            )
            self.install_button.setEnabled(True)

    return InstallDialog()
