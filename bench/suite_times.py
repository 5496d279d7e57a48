"""Time the test suite by group in one pytest run: `python bench/suite_times.py [NAME] [pytest arguments]`.

Each test belongs to the first of its markers in GROUPS (installer, catalogue, qgis_process, end_to_end, learning,
dask), or to "unit" when it has none; its time is setup + call + teardown as pytest reports them (a session fixture
is counted in the first test that uses it). Writes bench/results/NAME.json (default suite_times) with the wall time,
the load average before and after (the machine is shared: compare groups within one run), and per group the number
of tests, their seconds and the slowest five. Example, the unit part alone (`make test-unit`'s selection):
`python bench/suite_times.py unit_times -m "not (installer or catalogue or qgis_process or end_to_end or learning
or dask)"`.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict

import pytest
from _common import ROOT, save

GROUPS = ("installer", "catalogue", "qgis_process", "end_to_end", "learning", "dask")


class GroupTimes:
    """A pytest plugin that adds up each test's phases by group."""

    def __init__(self) -> None:
        self.group: dict[str, str] = {}
        self.seconds: dict[str, float] = defaultdict(float)
        self.outcomes: dict[str, str] = {}

    def pytest_collection_modifyitems(self, items) -> None:  # noqa: D102 - pytest hook
        for item in items:
            names = {m.name for m in item.iter_markers()}
            self.group[item.nodeid] = next((g for g in GROUPS if g in names), "unit")

    def pytest_runtest_logreport(self, report) -> None:  # noqa: D102 - pytest hook
        self.seconds[report.nodeid] += report.duration
        if report.when == "call" or report.outcome != "passed":
            self.outcomes[report.nodeid] = report.outcome

    def summary(self) -> dict:
        """Per group: tests, seconds, the slowest five."""
        groups: dict[str, dict] = {}
        for nodeid, group in self.group.items():
            if nodeid not in self.seconds:
                continue  # deselected
            g = groups.setdefault(group, {"tests": 0, "seconds": 0.0, "tests_by_seconds": []})
            g["tests"] += 1
            g["seconds"] += self.seconds[nodeid]
            g["tests_by_seconds"].append((round(self.seconds[nodeid], 2), nodeid))
        for g in groups.values():
            g["seconds"] = round(g["seconds"], 1)
            g["tests_by_seconds"] = sorted(g["tests_by_seconds"], reverse=True)[:5]
        return groups


def main() -> int:
    """Run pytest once with the plugin; save the figures."""
    args = sys.argv[1:]
    name = "suite_times"
    if args and not args[0].startswith("-") and not os.path.exists(args[0]):
        name, args = args[0], args[1:]
    os.chdir(ROOT)
    plugin = GroupTimes()
    load_before = os.getloadavg()
    start = time.perf_counter()
    cpu_start = os.times()
    code = pytest.main(["-q", "-p", "no:randomly", *args], plugins=[plugin])
    wall = time.perf_counter() - start
    cpu_end = os.times()
    fields = ("user", "system", "children_user", "children_system")
    cpu = sum(getattr(cpu_end, f) - getattr(cpu_start, f) for f in fields)
    failed = sorted(n for n, o in plugin.outcomes.items() if o == "failed")
    path = save(
        name,
        {
            "command": "python bench/suite_times.py " + " ".join([name, *args]),
            "exit_code": int(code),
            "wall_s": round(wall, 1),
            "cpu_s_this_process_and_children": round(cpu, 1),
            "cores": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "groups": plugin.summary(),
            "failed": failed,
        },
    )
    print(f"wall {wall:.0f} s; groups: " + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in plugin.summary().items()))
    print(f"saved {path}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
