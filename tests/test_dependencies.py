"""The dependency installer: interpreter choice, path set-up, staging and the subprocess import check."""

import os
import sys

import pytest
from rts_fusion.pipeline import environment
from rts_fusion.pipeline.environment import prepend_deps_folder
from rts_fusion.plugin import dependencies as deps


def touch(path) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("")
    return str(path)


def fake_probe(answers: dict):
    return lambda path: answers.get(path)


def test_linux_shim_on_path_is_not_qgis_python(tmp_path):
    usr = tmp_path / "usr"
    shim = touch(tmp_path / "home" / ".pyenv" / "shims" / "python3")  # another Python, first on PATH
    real = touch(usr / "bin" / "python3.11")
    touch(usr / "bin" / "python3")
    probe = fake_probe({shim: ((3, 12), str(tmp_path / "pyenv")), real: ((3, 11), str(usr))})
    assert environment.choose_python(shim, str(usr), str(usr), (3, 11), False, probe) == real
    qgis_binary = touch(usr / "bin" / "qgis")  # sys.executable is the QGIS binary itself
    assert environment.choose_python(qgis_binary, str(usr), str(usr), (3, 11), False, probe) == real


def test_linux_wrong_version_under_prefix_is_skipped(tmp_path):
    usr = tmp_path / "usr"
    py311 = touch(usr / "bin" / "python3.11")
    py3 = touch(usr / "bin" / "python3")
    probe = fake_probe({py311: ((3, 11), str(tmp_path / "elsewhere")), py3: ((3, 11), str(usr))})
    assert environment.choose_python("", str(usr), str(usr), (3, 11), False, probe) == py3  # prefix must match too
    assert environment.choose_python("", str(usr), str(usr), (3, 13), False, probe) is None


def test_windows_osgeo4w_and_standalone_layouts(tmp_path):
    for root in (tmp_path / "OSGeo4W", tmp_path / "Program Files" / "QGIS 3.34.4"):
        prefix = root / "apps" / "Python312"
        python = touch(prefix / "python.exe")
        touch(prefix / "pythonw.exe")
        qgis = touch(root / "bin" / "qgis-ltr-bin.exe")
        probe = fake_probe({python: ((3, 12), str(prefix))})
        assert environment.choose_python(qgis, str(prefix), str(prefix), (3, 12), True, probe) == python
        pythonw = str(prefix / "pythonw.exe")  # a windowless interpreter as sys.executable is not used for pip
        assert environment.choose_python(pythonw, str(prefix), str(prefix), (3, 12), True, probe) == python


def test_macos_bundle_layout(tmp_path):
    contents = tmp_path / "QGIS.app" / "Contents"
    prefix = contents / "Frameworks" / "Python.framework" / "Versions" / "3.10"
    python = touch(prefix / "bin" / "python3.10")
    qgis = touch(contents / "MacOS" / "QGIS")
    probe = fake_probe({python: ((3, 10), str(prefix))})
    assert environment.choose_python(qgis, str(prefix), str(prefix), (3, 10), False, probe) == python
    brew = touch(tmp_path / "opt" / "homebrew" / "bin" / "python3")  # not under the bundle's prefix: ignored
    assert environment.choose_python(brew, str(prefix), str(prefix), (3, 10), False, probe) == python


def test_this_interpreter_is_found_and_runs():
    found = deps.qgis_python()
    assert environment.probe_python(found) == (sys.version_info[:2], sys.prefix)


def test_private_folder_goes_before_site_packages(tmp_path):
    path = [
        "",
        "/usr/lib/python311.zip",
        "/home/u/.local/lib/python3.11/site-packages",
        "/usr/lib/python3/dist-packages",
    ]
    assert prepend_deps_folder(str(tmp_path), path)
    assert path.index(str(tmp_path)) == 2  # before the user and system site folders, after the standard library
    assert prepend_deps_folder(str(tmp_path), path) and path.count(str(tmp_path)) == 1
    assert not prepend_deps_folder(str(tmp_path / "absent"), path)


def test_prune_keeps_qgis_numpy_gdal_and_qt(tmp_path):
    for name in ("numpy", "numpy-1.24.2.dist-info", "numpy.libs", "osgeo", "PyQt5", "sympy", "sympy-1.14.dist-info"):
        os.makedirs(tmp_path / name)
    removed = deps.prune_never_private(str(tmp_path))
    assert set(removed) == {"numpy", "numpy-1.24.2.dist-info", "numpy.libs", "osgeo", "PyQt5"}
    assert sorted(os.listdir(tmp_path)) == ["sympy", "sympy-1.14.dist-info"]


def test_failed_install_leaves_nothing_and_keeps_the_earlier_one(tmp_path):
    target = tmp_path / "rts_fusion" / "site-packages"
    touch(target / "earlier.py")
    plan = deps.plan_install(sys.executable, str(target), numpy_version="1.24.2")
    assert os.path.dirname(plan.staging) == str(target.parent) and all(plan.staging in c for c in plan.commands)
    failing = deps.InstallPlan(plan.python, plan.target, plan.staging, ((sys.executable, "-c", "raise SystemExit(1)"),))
    assert deps.install(failing, log=lambda _m: None)
    assert os.listdir(target.parent) == ["site-packages"] and os.listdir(target) == ["earlier.py"]
    plan = deps.plan_install(sys.executable, str(target), numpy_version="1.24.2")
    touch(os.path.join(plan.staging, "new.py"))
    assert deps.commit_install(plan, {"ok": False, "problems": ["torch does not import"]}) == ["torch does not import"]
    assert os.listdir(target.parent) == ["site-packages"] and os.listdir(target) == ["earlier.py"]
    plan = deps.plan_install(sys.executable, str(target), numpy_version="1.24.2")
    touch(os.path.join(plan.staging, "new.py"))
    assert deps.commit_install(plan, {"ok": True}) == []
    assert os.listdir(target.parent) == ["site-packages"] and os.listdir(target) == ["new.py"]


def test_import_check_runs_in_a_subprocess_and_the_private_folder_wins(tmp_path):
    # A private skimage must shadow the venv's (proof of precedence); a broken safetensors must be reported.
    touch(tmp_path / "skimage" / "__init__.py")
    (tmp_path / "skimage" / "__init__.py").write_text("__version__ = '9.9-private'\n")
    touch(tmp_path / "safetensors" / "__init__.py")
    (tmp_path / "safetensors" / "__init__.py").write_text("raise ImportError('broken wheel')\n")
    report = deps.check_folder(sys.executable, str(tmp_path))
    assert report["modules"]["skimage"]["version"] == "9.9-private"
    assert not report["ok"] and any("safetensors" in p and "broken wheel" in p for p in report["problems"])
    assert "version" in report["modules"]["numpy"] and str(tmp_path) not in report["modules"]["numpy"]["file"]


def test_install_tries_the_next_command_on_an_emptied_staging_folder(tmp_path, monkeypatch):
    target = tmp_path / "rts_fusion" / "site-packages"
    plan = deps.plan_install(sys.executable, str(target), numpy_version="1.24.2")
    leave_part = f"open({os.path.join(plan.staging, 'half.py')!r}, 'w').close(); raise SystemExit(1)"
    ok = os.path.join(plan.staging, "ok.py")
    seen = f"import os; open({ok!r}, 'w').write(repr(sorted(os.listdir({plan.staging!r}))))"
    attempts = ((sys.executable, "-c", leave_part), (sys.executable, "-c", seen), (sys.executable, "-c", "1/0"))
    monkeypatch.setattr(deps, "check_folder", lambda *_a, **_k: {"ok": True})
    log: list[str] = []
    assert deps.install(deps.InstallPlan(plan.python, plan.target, plan.staging, attempts), log=log.append) == []
    assert deps.RETRY_MESSAGE in log and sum(m.startswith("$ ") for m in log) == 2  # the third never ran
    assert sorted(os.listdir(target)) == ["ok.py"] and (target / "ok.py").read_text() == "['ok.py']"  # no half.py


def test_install_command_for_cpu_cuda_and_macos():
    local, cpu = deps.install_commands("/qgis/python3", "/deps", "cpu", numpy_version="1.26.4", system="linux")
    assert local == cpu[:-2]  # first without PyTorch's index (a local wheel or mirror), then with it
    assert cpu[:8] == [
        "/qgis/python3",
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--upgrade",
        "--target",
        "/deps",
    ]
    assert f"torch=={deps.TORCH_VERSION}+cpu" in cpu and "numpy==1.26.4" in cpu  # the label: never PyPI's CUDA torch
    assert any(a.startswith("transformers") for a in cpu) and "scikit-image>=0.21" in cpu
    assert cpu[-2:] == ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]
    _, cuda = deps.install_commands("/p", "/d", deps.CUDA_BUILDS[-1], numpy_version="2.2.4", system="win32")
    assert f"torch=={deps.TORCH_VERSION}+{deps.CUDA_BUILDS[-1]}" in cuda and cuda[-1].endswith(deps.CUDA_BUILDS[-1])
    (mac,) = deps.install_commands("/p", "/d", "cpu", numpy_version="1.26.4", system="darwin")
    assert f"torch=={deps.TORCH_VERSION}" in mac and "--extra-index-url" not in mac
    with pytest.raises(ValueError, match="no CUDA builds for macOS"):
        deps.install_commands("/p", "/d", "cu128", system="darwin")
    with pytest.raises(ValueError, match="Unknown PyTorch build"):
        deps.install_commands("/p", "/d", "rocm")
    import numpy

    assert f"numpy=={numpy.__version__}" in deps.install_commands("/p", "/d")[0]  # QGIS's numpy kept by default


def test_a_crashing_check_is_a_failure():
    report = deps.parse_check("Segmentation fault", -11)
    assert not report["ok"] and "-11" in report["problems"][0]
    with pytest.raises(ValueError, match="Unknown PyTorch build"):
        deps.plan_install(sys.executable, "/nonexistent/x", "rocm")


def test_start_up_check_reports_a_broken_install(qgis_iface, monkeypatch, tmp_path):
    import rts_fusion

    touch(tmp_path / "safetensors" / "__init__.py")
    (tmp_path / "safetensors" / "__init__.py").write_text("raise ImportError('broken wheel')\n")
    monkeypatch.setattr(deps, "deps_folder", lambda: str(tmp_path))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the plugin puts the (broken) folder on this process's path
    plugin = rts_fusion.classFactory(qgis_iface)
    plugin.start_import_check()  # what initGui does when every package is found
    process = plugin.import_check
    assert process is not None and process.waitForFinished(300_000)  # emits finished: the report is handled
    assert plugin.import_check is None and plugin.deps_message is not None
    assert "do not work" in plugin.deps_message.text() and "broken wheel" in plugin.deps_message.text()


def test_mapping_only_plan_installs_onnxruntime_without_torch_and_checks_that_stack(tmp_path):
    (cmd,) = deps.install_commands("/qgis/python3", "/deps", deps.MAPPING_BUILD, "1.26.4", system="darwin")
    assert f"onnxruntime=={deps.ORT_VERSION}" in cmd and "scikit-image>=0.21" in cmd and "numpy==1.26.4" in cmd
    assert not any(a.startswith(("torch", "transformers")) for a in cmd) and "--extra-index-url" not in cmd
    plan = deps.plan_install(sys.executable, str(tmp_path / "site-packages"), deps.MAPPING_BUILD, "1.24.2")
    assert (
        plan.mapping_only and not deps.plan_install(sys.executable, str(tmp_path / "s2"), "cpu", "1.24.2").mapping_only
    )
    assert deps.check_command("/p", plan.staging, plan.mapping_only)[2:] == ["--check-mapping", plan.staging]
    # The mapping check imports onnxruntime and scikit-image, not torch: it passes where torch is blocked.
    touch(tmp_path / "torch" / "__init__.py")
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    mapping = deps.check_folder(sys.executable, str(tmp_path), mapping_only=True)
    assert mapping["ok"] and "onnxruntime" in mapping["modules"] and "torch" not in mapping["modules"]
    assert not deps.check_folder(sys.executable, str(tmp_path))["ok"]


def test_status_says_mapping_works_with_onnxruntime_or_torch():
    both = {"torch": None, "transformers": None, "safetensors": None, "skimage": "0.21"}
    assert deps.DependencyStatus(both, onnxruntime="1.31.1").can_map
    assert not deps.DependencyStatus(both, onnxruntime="1.31.1").ok
    assert not deps.DependencyStatus(both).can_map
    assert not deps.DependencyStatus({**both, "skimage": None}, onnxruntime="1.31.1").can_map
    full = {"torch": "2.13", "transformers": "4.5", "safetensors": "0.4", "skimage": "0.21"}
    assert deps.DependencyStatus(full).can_map and deps.DependencyStatus(full).ok
