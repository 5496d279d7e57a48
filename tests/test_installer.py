"""The dependency installer for real: its own pip commands into a temporary folder, then a detection in a fresh
QGIS Python (Debian's /usr/bin/python3, not the venv) with the plugin's path set-up. Slow (downloads and unpacks
torch); marker `installer`, run alone with `pytest -m installer`."""

import json
import os
import subprocess
import sys
import time

import pytest
from rts_fusion.core.synthetic import sample_inputs
from rts_fusion.pipeline import worker
from rts_fusion.pipeline.map_slumps import MapInputs, MapOptions, MapOutputs
from rts_fusion.plugin import dependencies as deps
from test_models import card_for, tiny  # tests/ is on sys.path (pytest's prepend import mode)

QGIS_PYTHON = "/usr/bin/python3"
ENVIRONMENT = os.path.join(os.path.dirname(worker.__file__), "environment.py")
pytestmark = [
    pytest.mark.installer,
    pytest.mark.skipif(not os.path.exists(QGIS_PYTHON), reason="no system Python (QGIS's) at /usr/bin/python3"),
]


def fresh_env() -> dict:
    """The environment without anything pointing at the venv: a plain QGIS Python sees only Debian's packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return env


def in_qgis_python(code: str, folder: str) -> dict:
    script = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('env', {ENVIRONMENT!r})\n"
        "env = importlib.util.module_from_spec(spec); spec.loader.exec_module(env)\n"
        f"env.prepend_deps_folder({folder!r})\n" + code
    )
    out = subprocess.run([QGIS_PYTHON, "-c", script], capture_output=True, text=True, env=fresh_env(), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def untrained_package(folder) -> str:
    """A tiny FusionSA-SegFormer package on the paper bands (untrained: this test checks the stack, not skill)."""
    import torch
    from rts_fusion.core.features import PAPER
    from rts_fusion.models.package import save_package
    from rts_fusion.models.registry import build_model

    torch.manual_seed(0)
    cfg = tiny("fusion_sa_segformer", len(PAPER))
    path = str(folder / "tiny.safetensors")
    save_package(path, build_model(cfg).eval(), card_for(cfg, PAPER))
    return path


def test_installer_leaves_a_stack_that_detects_in_qgis_python(sample_scene, tmp_path):
    target = tmp_path / "profile" / "rts_fusion" / "site-packages"
    numpy_version = subprocess.check_output(
        [QGIS_PYTHON, "-c", "import numpy; print(numpy.__version__)"], text=True, env=fresh_env()
    ).strip()
    plan = deps.plan_install(QGIS_PYTHON, str(target), "cpu", numpy_version)
    log: list[str] = []
    start = time.monotonic()
    problems = deps.install(plan, log=log.append)
    seconds = time.monotonic() - start
    print(f"installer: pip + prune + import check took {seconds:.0f} s", file=sys.stderr)
    assert problems == [], "\n".join(log)[-6000:]
    assert os.listdir(target.parent) == ["site-packages"]  # the staging folder was moved into place
    assert not any(n.split("-")[0].split(".")[0] in ("numpy", "osgeo") for n in os.listdir(target))
    # With the plugin's path set-up, the installed sympy (torch needs a newer one than Debian's) and torch win, and
    # numpy and GDAL stay the system's.
    found = in_qgis_python(
        "import sympy, numpy, torch, transformers\nfrom osgeo import gdal\n"
        "print(json.dumps({m.__name__: m.__file__ for m in (sympy, numpy, torch, transformers, gdal)}))",
        str(target),
    )
    assert found["sympy"].startswith(str(target)) and found["torch"].startswith(str(target))
    assert found["numpy"].startswith("/usr/") and found["osgeo.gdal"].startswith("/usr/")
    # A detection through the worker process, started with QGIS's Python and the folder, as the panel does.
    job, outputs = (
        str(tmp_path / "job.json"),
        MapOutputs(*(str(tmp_path / n) for n in ("s.tif", "p.tif", "m.tif", "x.gpkg"))),
    )
    model = untrained_package(tmp_path)
    worker.write_job(
        job, MapInputs(sample_inputs(sample_scene)), model, outputs, MapOptions(device="cpu", min_area_m2=500)
    )
    env = {**fresh_env(), worker.DEPS_ENV: str(target)}
    run = subprocess.run(
        [QGIS_PYTHON, os.path.join(os.path.dirname(worker.__file__), "worker.py"), job],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert run.returncode == worker.DONE, run.stdout[-2000:] + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])["result"]
    assert result["tiles"] > 0 and result["valid_pixels"] > 0 and all(os.path.exists(p) for p in outputs.paths())
