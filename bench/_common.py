"""Helpers shared by the benchmarks: import the plugin package, time a call, save results."""

from __future__ import annotations

import importlib.util
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def import_package(folder: str | Path, name: str) -> str:
    """Import the plugin package in `folder` (a checkout or an extracted older version) under `name`."""
    spec = importlib.util.spec_from_file_location(
        name, Path(folder) / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return name


def import_plugin() -> None:
    """Make the repository root importable as rts_fusion."""
    if "rts_fusion" not in sys.modules:
        import_package(ROOT, "rts_fusion")


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of fn over repeats runs, in seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def save(name: str, payload: dict) -> Path:
    """Write a benchmark's figures with the machine they were measured on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": platform.platform(), "python": platform.python_version(), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def sample_stack(folder: Path, size: int, seed: int = 42, regions: int = 0, slump_density: float = 1.0):
    """A sample scene of `size` px fused with the extended preset (regions, slump_density: generate_sample_scene's).

    Returns:
        (scene, stack path).

    """
    import_plugin()
    from rts_fusion.core.features import EXTENDED
    from rts_fusion.core.synthetic import fuse_sample_scene, generate_sample_scene

    scene = generate_sample_scene(
        str(folder / "scene"), size=size, seed=seed, regions=regions, slump_density=slump_density
    )
    return scene, fuse_sample_scene(scene, EXTENDED, str(folder / "stack.tif"))
